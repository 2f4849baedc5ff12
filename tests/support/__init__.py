"""What the tests share: ``clinic serve`` processes, clients, message builders, hostile bytes.

Test modules import from here, never from one another; conftest.py files import from
here too.
"""
