"""Finishing an AVI that FFmpeg wrote as a stream (into a pipe, see PipedFile).

On output it cannot seek in, FFmpeg's AVI muxer leaves the sizes of the file and of its `movi` list
at 0xFFFFFFFF, the frame counts at 0 and 2^30, and writes no index: players read it up to its
last frame (what a killed writer leaves behind), but show a wrong length and cannot seek. Once the
writer is done, this walks the frame chunks on disk, appends the `idx1` index and writes the true
sizes and counts into the headers, as FFmpeg does on a file it can seek in.
"""

from __future__ import annotations

import struct
from pathlib import Path

AVIF_HASINDEX = 0x10
AVIIF_KEYFRAME = 0x10        # every MJPG frame stands alone
AVIH_FLAGS, AVIH_FRAMES = 12, 16      # offsets in the avih chunk's data (MainAVIHeader)
STRH_LENGTH = 32                      # offset of dwLength in the strh chunk's data (AVIStreamHeader)


def finish_streamed_avi(path: Path) -> int:
    """Index and sizes for a streamed single-stream AVI at `path`; the number of frames indexed.
    A file that is not one FFmpeg streamed (a size already set), or holds no whole frame, is left
    as it is: 0."""
    with open(path, "r+b") as f:
        data_end = f.seek(0, 2)
        f.seek(0)
        start = f.read(12)
        if len(start) < 12:
            return 0
        riff, riff_size, form = struct.unpack("<4sI4s", start)
        if riff != b"RIFF" or form != b"AVI " or riff_size != 0xFFFFFFFF:
            return 0
        headers: dict[bytes, int] = {}   # chunk id -> offset of its data (avih, strh)
        movi = None
        offset = 12
        while movi is None and offset + 12 <= data_end:
            f.seek(offset)
            tag, size, kind = struct.unpack("<4sI4s", f.read(12))
            if tag == b"LIST" and kind == b"movi":
                movi = offset
            elif tag == b"LIST" and kind in (b"hdrl", b"strl"):
                offset += 12  # walk into the list
                continue
            else:
                headers.setdefault(tag, offset + 8)
            offset += 8 + size + (size & 1)
        if movi is None or not (headers.get(b"avih", data_end) + AVIH_FRAMES + 4 <= movi
                                and headers.get(b"strh", data_end) + STRH_LENGTH + 4 <= movi):
            return 0  # not the headers FFmpeg writes
        index = []
        offset = movi + 12
        while offset + 8 <= data_end:
            f.seek(offset)
            tag, size = struct.unpack("<4sI", f.read(8))
            if offset + 8 + size > data_end:
                break  # a chunk cut short (the writer ended there): left out of the index
            if tag[2:] in (b"dc", b"db"):  # a video frame (compressed, or not)
                index.append(struct.pack("<4sIII", tag, AVIIF_KEYFRAME, offset - (movi + 8), size))
            offset += 8 + size + (size & 1)
        frames = len(index)
        if not frames:
            return 0  # nothing to index: left as it is
        f.seek(offset)
        f.truncate()
        f.write(b"idx1" + struct.pack("<I", 16 * frames) + b"".join(index))
        end = f.tell()
        f.seek(4)
        f.write(struct.pack("<I", end - 8))
        f.seek(movi + 4)
        f.write(struct.pack("<I", offset - (movi + 8)))
        f.seek(headers[b"avih"] + AVIH_FLAGS)
        flags = struct.unpack("<I", f.read(4))[0]
        f.seek(headers[b"avih"] + AVIH_FLAGS)
        f.write(struct.pack("<II", flags | AVIF_HASINDEX, frames))
        f.seek(headers[b"strh"] + STRH_LENGTH)
        f.write(struct.pack("<I", frames))
    return frames
