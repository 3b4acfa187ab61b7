"""`python -m bench.unsealed_serve serve ...`: `cim serve` with sealing switched off, the baseline of benchmark 9.

Only for the benchmark's comparison (encryption against without, in the same run): the chat service is
given no key service, so lines are stored as plain TEXT as before crypto-shredding. The product has no
such switch.
"""

from __future__ import annotations

import store


def _unsealed(original):
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.chats.keys = None
        self.chats._group.keys = None

    return init


store.Store.__init__ = _unsealed(store.Store.__init__)

if __name__ == "__main__":
    from cim.cli import main

    main()
