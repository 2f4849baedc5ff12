"""Shared test helpers."""

from __future__ import annotations

#: (query's Specific Character Set, a real name, a wild card query on a name written in it).
#: Names from PS3.5 Annexes H, I and K where the standard gives them.
SETS: list[tuple[tuple[str, ...], str, str]] = [
    (("ISO_IR 100",), "Müller^Jürgen", "Müll*"),
    (("ISO_IR 101",), "Wałęsa^Lech", "Wałę*"),
    (("ISO_IR 101",), "Dvořák^Antonín", "Dvoř*"),
    (("ISO_IR 109",), "Borġ^Ġużeppi", "Borġ*"),
    (("ISO_IR 110",), "Bērziņš^Jānis", "Bērziņ*"),
    (("ISO_IR 144",), "Иванов^Иван", "Иван*"),
    (("ISO_IR 127",), "قباني^نزار", "قباني*"),
    (("ISO_IR 126",), "Παπαδόπουλος^Γιώργος", "Παπαδ*"),
    (("ISO_IR 138",), "שרון^דבורה", "שרון*"),
    (("ISO_IR 148",), "Öztürk^Ayşe", "Öztürk*"),
    (("ISO_IR 203",), "Cœur^Béatrice", "Cœur*"),
    (("ISO_IR 166",), "ทองดี^สมชาย", "ทองดี*"),
    (("GB18030",), "Wang^XiaoDong=王^小东", "*王^小东*"),
    (("GBK",), "Wang^XiaoDong=王^小东", "*王^小东*"),
    (("ISO_IR 13",), "ﾔﾏﾀﾞ^ﾀﾛｳ", "ﾔﾏ*"),
    (("ISO 2022 IR 6", "ISO 2022 IR 87"), "Yamada^Tarou=山田^太郎=やまだ^たろう", "*山田*"),
    (("", "ISO 2022 IR 87"), "Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada*"),
    (("ISO 2022 IR 13", "ISO 2022 IR 87"), "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "*山田*"),
    (("", "ISO 2022 IR 149"), "Hong^Gildong=洪^吉洞=홍^길동", "*홍^길동*"),
    (("", "ISO 2022 IR 58"), "Zhang^XiaoDong=张^小东", "*张^小东*"),
]
