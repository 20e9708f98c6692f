"""One reader per public data-set layout, shared by `siammask dataset build` (data/formats) and
`siammask eval` (evaluation/data), so a data set that trains is read the same way when it is scored.

Rules, one per layout:
- label PNGs (labels.py): a palette PNG holds object ids, 0 background, 255 void (a separate mask,
  never an object); any other PNG is one binary object, id 1 where its grey value is >= 128.
- VOT ground truth (regions.py): 4 values are an axis-aligned x,y,w,h box, 8 values a polygon, both
  0-based; any other count is an error.
- OTB / UAV123 ground truth (regions.py, sequences.py): 1-based x,y,w,h; groundtruth_rect.N.txt is
  object N of one video.
- Absent targets (both): a row of NaN only (NaN,NaN,NaN,NaN as UAV123 and VOT-LT write it) means
  the target is not in the frame; trainers skip it, evaluations do not score boxes there. A row
  mixing numbers with NaN, or holding infinity, is an error naming file and line.
- image folders (images.py): one suffix set, name order, git's text stand-ins for folder symlinks
  followed.
Every failure is a one-line UserError naming the file.
"""
