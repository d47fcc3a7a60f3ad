# Routes esptool's output through its replaceable logger: esptool 5 logs through esp-pylib's
# EspLog singleton (esptool.logger.log is a proxy to it; its set_logger() and EspLog.set_logger
# fill the same slot with any EspLogBase). Text lines go to our `log` callable, progress bars
# become a tqdm bar per write.
from contextlib import contextmanager

import esptool.logger  # noqa: F401  (installs esptool's own logger first, restored afterwards)
from esp_pylib.logger import EspLog, EspLogBase


class TqdmLogger(EspLogBase):
    def __init__(self, log=print, progress=True):
        self.log = log
        self.show_progress = progress
        self.bar = None

    def _say(self, text):
        text = str(text).rstrip()
        if text:
            if self.bar is not None:  # keep the bar below the text instead of through it
                self.bar.clear()
            self.log(text)
            if self.bar is not None:
                self.bar.refresh()

    def print(self, *args, **kwargs):
        self._say(kwargs.get("sep", " ").join(str(a) for a in args))

    def note(self, *args):
        self._say("note: " + " ".join(str(a) for a in args))

    def hint(self, *args):
        self._say("hint: " + " ".join(str(a) for a in args))

    def debug(self, *args):
        pass

    def warn(self, *args, suggestion=None):
        self._say("warning: " + " ".join(str(a) for a in args))

    def err(self, *args, suggestion=None):
        self._say("error: " + " ".join(str(a) for a in args))

    warning, error = warn, err  # the older names some esptool code paths still call

    def set_verbosity(self, verbosity):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        if not self.show_progress:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total_iters, unit="B", unit_scale=True, desc="writing",
                            leave=True)
        self.bar.total = total_iters
        self.bar.n = cur_iter
        self.bar.refresh()
        if cur_iter >= total_iters:
            self.close_bar()

    def close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextmanager
def esptool_output(log=print, progress=True):
    """Install a TqdmLogger for the duration; the previous logger comes back afterwards."""
    previous = EspLog.instance
    logger = TqdmLogger(log, progress)
    EspLog.set_logger(logger)
    try:
        yield logger
    finally:
        logger.close_bar()
        EspLog.instance = previous
