"""Readers of each dataset's official on-disk layout, one module a dataset.

``READERS`` maps a dataset name (as used in ``data.train`` / ``data.val`` / ``data.test``) to a
function ``read(root, split, cfg) -> list[VideoRecord]``, where ``root`` is ``{data.root}/{name}``
and ``cfg`` the ``DataConfig``. ``files`` holds what they share: locating files and videos, with
errors that name what was looked for and where.
"""

from __future__ import annotations

from collections.abc import Callable

from data_modules.dataset import VideoRecord
from data_modules.readers.activitynet import read_activitynet
from data_modules.readers.cc3m import read_cc3m
from data_modules.readers.didemo import read_didemo
from data_modules.readers.hmdb51 import read_hmdb51
from data_modules.readers.lsmdc import read_lsmdc
from data_modules.readers.msrvtt import read_msrvtt
from data_modules.readers.ucf101 import read_ucf101
from data_modules.readers.webvid import read_webvid

READERS: dict[str, Callable[..., list[VideoRecord]]] = {
    "webvid": read_webvid,
    "cc3m": read_cc3m,
    "msrvtt": read_msrvtt,
    "lsmdc": read_lsmdc,
    "activitynet": read_activitynet,
    "didemo": read_didemo,
    "hmdb51": read_hmdb51,
    "ucf101": read_ucf101,
    # the demo corpus's test-only splits, written in the MSR-VTT layout
    "msrvtt_1k": read_msrvtt,
    "binding": read_msrvtt,
    "single_attribute": read_msrvtt,
}
