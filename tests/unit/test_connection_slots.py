"""The web door's connection slots: a share per address below the total, given back."""

from __future__ import annotations

import threading

from clinic.web.door import ConnectionSlots


def test_per_address_share_and_total() -> None:
    slots = ConnectionSlots(total=5, per_address=2)
    assert slots.take("a") and slots.take("a")
    assert not slots.take("a")  # a's share is used up
    assert slots.take("b") and slots.take("b") and slots.take("c")
    assert not slots.take("d")  # the total is used up
    assert (slots.held("a"), slots.held()) == (2, 5)
    slots.give_back("a")
    assert slots.take("d") and not slots.take("a")
    for address in ("a", "b", "b", "c", "d"):
        slots.give_back(address)
    assert slots.held() == 0 and slots.held("b") == 0


def test_parallel_takes_never_pass_the_limits() -> None:
    slots = ConnectionSlots(total=50, per_address=7)
    start = threading.Barrier(40)
    taken: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        start.wait(timeout=10)
        for _ in range(10):
            got = slots.take("flood")
            with lock:
                taken.append(got)

    threads = [threading.Thread(target=take) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert taken.count(True) == 7 and slots.held("flood") == 7
