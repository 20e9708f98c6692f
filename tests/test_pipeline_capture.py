"""The capture's one-frame mailbox: every lost frame (overwritten by a newer one, or unreadable) is
reported with the first frame after it, never with a frame taken before it was lost, so each
header's `dropped` is exactly the gap before its frame."""
from __future__ import annotations

import numpy as np

from siammask.pipeline.capture import Grabbed, Slot


class Running:
    def __bool__(self) -> bool:
        return False  # the stop flag, never set


def grabbed(index: int) -> Grabbed:
    return Grabbed(np.zeros((2, 2, 3), np.uint8), index, 0.0, index == 0, 25.0)


def test_losses_travel_with_the_next_frame():
    slot, stop = Slot(), Running()
    slot.put(grabbed(0), wait=False, stop=stop)
    slot.lose(1)                      # frame 1 unreadable, after 0 was put and before it was taken
    item, lost = slot.take(0)
    assert (item.index, lost) == (0, 0)
    slot.put(grabbed(2), wait=False, stop=stop)
    slot.put(grabbed(3), wait=False, stop=stop)  # a live source overwrites 2
    item, lost = slot.take(0)
    assert (item.index, lost) == (3, 2)  # frames 1 and 2
    assert slot.take(0) == (None, 0)
