"""Windows lane only (copied into the Wine interpreter's site-packages by ci/windows/lane.py).

Two gaps of Wine 8, not of Windows; real Windows never loads this file.

* Wine does not implement KERNEL32.CopyFile2, which CPython 3.12's shutil.copy2/copyfile call
  when ``_winapi.CopyFile2`` exists; without it shutil falls back to its portable copy loop, as on
  older Windows.
* Wine's CreateProcess now and then fails with ERROR_INTERNAL_ERROR (1359) when it cannot start
  the new process's Linux side (seen once in a CI run of about 1,200 tests, on a loaded 2-core
  machine; never reproduced alone). Nothing has started then, so the start is tried again, up to
  three more times; any other error, or a fourth 1359, is raised as before.
"""

import _winapi
import time

if hasattr(_winapi, "CopyFile2"):
    del _winapi.CopyFile2

_ERROR_INTERNAL_ERROR = 1359
_create_process = _winapi.CreateProcess


def _create_process_again_on_wine_internal_error(*args):
    for attempt in range(3):
        try:
            return _create_process(*args)
        except OSError as exc:
            if getattr(exc, "winerror", None) != _ERROR_INTERNAL_ERROR:
                raise
            time.sleep(0.2 * (attempt + 1))
    return _create_process(*args)


_winapi.CreateProcess = _create_process_again_on_wine_internal_error
