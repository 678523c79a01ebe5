"""Windows lane only (copied into the Wine interpreter's site-packages by ci/windows/lane.py).

Wine 8 does not implement KERNEL32.CopyFile2, which CPython 3.12's shutil.copy2/copyfile call
when ``_winapi.CopyFile2`` exists; without it shutil falls back to its portable copy loop, as on
older Windows. Real Windows has CopyFile2 and never loads this file.
"""

import _winapi

if hasattr(_winapi, "CopyFile2"):
    del _winapi.CopyFile2
