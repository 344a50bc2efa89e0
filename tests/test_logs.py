import logging

from lstmstream.logs import OneLine, Throttle


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_throttle_logs_the_first_then_one_summary_per_interval(caplog):
    clock = Clock()
    log = logging.getLogger("test.throttle")
    th = Throttle(log, first=2, every=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, "test.throttle"):
        for _ in range(50):
            th.warn("late", "t=1 is not after 2")
        th.warn("key", "empty")
        th.flush()  # too early: nothing
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 4  # two 'late', the 'more are counted' notice, one 'key'
        clock.now = 10.0
        th.flush()
        clock.now = 25.0
        th.flush()  # nothing held back since: no line
    summary = [r.getMessage() for r in caplog.records][4:]
    assert summary == ["rejected since the last summary (not logged one by one): late=48"]


def test_one_line_and_journal_priority():
    rec = logging.LogRecord("lstmstream.daemon", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert OneLine(journal=True).format(rec) == "<4>lstmstream.daemon WARNING a\\nb"
    plain = OneLine(journal=False).format(rec)
    assert plain.endswith("lstmstream.daemon WARNING a\\nb") and "\n" not in plain and plain[0].isdigit()
