"""Leaving a server process at once, once its work is handed back."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def leave(status: int) -> NoReturn:
    """Flush the logs and exit with `status`, without interpreter teardown. By now the process
    has handed its work back, closed its stores and released its models; a normal exit would
    then destroy CTranslate2's native thread pools while a handed-back decode may still be
    inside one (C++ terminate, SIGABRT). Nothing is left to clean up."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
