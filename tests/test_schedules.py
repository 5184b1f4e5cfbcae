"""Schedules: the task keys (checked at load, recorded, resumed), the due-time arithmetic and its
deterministic jitter, ``last_scheduled`` on a real log, and the ``Scheduler`` on a test clock (plus
one test on the real clock). No browser: ``warmup serve``'s end-to-end test starts real runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO, cli_env, warmup

from warmup.errors import UsageError
from warmup.log import as_log
from warmup.serve.schedules import MAX_SLEEP_S, Scheduler, last_scheduled
from warmup.tasks import load_task
from warmup.tasks.loader import task_from_record
from warmup.tasks.schedule import Schedule, log_time

BODY = """
[[accounts]]
id = "alice"

[[steps]]
goto = "http://127.0.0.1:9/"
"""


def _task_file(tmp_path: Path, head: str, name: str = "morning.toml") -> Path:
    path = tmp_path / name
    path.write_text(head + BODY)
    return path


def _refused(tmp_path: Path, head: str) -> str:
    path = _task_file(tmp_path, head)
    with pytest.raises(UsageError) as caught:
        load_task(path)
    message = str(caught.value)
    assert message.startswith(f"task file {path}: ") and "\n" not in message
    return message.removeprefix(f"task file {path}: ")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- the task keys ---------------------------------------------------------------------------------
def test_a_schedule_loads_is_recorded_and_survives_a_resume(tmp_path: Path) -> None:
    path = _task_file(tmp_path, 'schedule = "0 6 * * 1-5"\ntimezone = "Europe/Paris"\njitter_s = 600\n'
                                'catch_up = false\ntimezone_id = "America/New_York"\n')
    task = load_task(path)
    assert task.schedule == Schedule(cron="0 6 * * 1-5", timezone="Europe/Paris", jitter_s=600, catch_up=False)
    assert task.identity["timezone_id"] == "America/New_York"  # the browser's zone: another key, kept
    record = task.record()
    assert (record["schedule"], record["timezone"], record["jitter_s"], record["catch_up"]) == (
        "0 6 * * 1-5", "Europe/Paris", 600, False)
    assert record["timezone_id"] == "America/New_York"
    resumed = task_from_record(record, ["alice"], where="run r1")
    assert resumed.schedule == task.schedule and resumed.identity == task.identity


def test_defaults_and_a_task_without_a_schedule(tmp_path: Path) -> None:
    task = load_task(_task_file(tmp_path, 'schedule = "* * * * * */2"\n'))
    assert task.schedule == Schedule(cron="* * * * * */2", timezone="UTC", jitter_s=0, catch_up=True)
    plain = load_task(_task_file(tmp_path, "", name="plain.toml"))
    assert plain.schedule is None
    assert not {"schedule", "timezone", "jitter_s", "catch_up"} & set(plain.record())  # older records unchanged


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('schedule = "0 25 * * *"', "schedule '0 25 * * *' is not a cron expression ("),
        ('schedule = "0 6 * *"', "schedule '0 6 * *' is not a cron expression (give 5 fields"),
        ('schedule = "0 6 * * * * 2030"', "schedule '0 6 * * * * 2030' is not a cron expression (give 5 fields"),
        ('schedule = "R 6 * * *"', "schedule 'R 6 * * *' is not a cron expression warmup takes (H and R"),
        ('schedule = "0 6 31 2 *"', "schedule '0 6 31 2 *' is never due"),
        ('schedule = 6', "schedule must be a string, not 6"),
        ('schedule = "0 6 * * *"\ntimezone = "Mars/Olympus"',
         "timezone 'Mars/Olympus' is not a time zone (use an IANA"),
        ('schedule = "0 6 * * *"\ntimezone = "../../etc/passwd"', "timezone '../../etc/passwd' is not a time zone"),
        ('schedule = "0 6 * * *"\njitter_s = -1', "jitter_s must be from 0 to 604800 seconds (a week), not -1"),
        ('schedule = "0 6 * * *"\njitter_s = "10m"', "jitter_s must be an integer, not '10m'"),
        ('schedule = "0 6 * * *"\ncatch_up = "yes"', "catch_up must be true or false, not 'yes'"),
        ('schedule = "0 * * * *"\njitter_s = 3600', "jitter_s = 3600 is not shorter than the time between two firings"),
        ('schedule = "0 6 * * 1-5"\njitter_s = 90000', "jitter_s = 90000 is not shorter than the time between two"),
        ('timezone = "Europe/Paris"', "timezone is set but schedule is not (timezone, jitter_s, catch_up go with"),
        ('jitter_s = 60', "jitter_s is set but schedule is not"),
        ('catch_up = false', "catch_up is set but schedule is not"),
    ],
)
def test_a_bad_schedule_is_refused_in_one_line_naming_the_file_and_key(tmp_path: Path, head: str,
                                                                        expected: str) -> None:
    assert _refused(tmp_path, head + "\n").startswith(expected)


def test_the_cli_refuses_a_bad_schedule_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _task_file(tmp_path, 'schedule = "0 25 * * *"\n')
    result = warmup("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"warmup: task file {path}: schedule '0 25 * * *' is not a cron expression (")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


# -- due times and jitter --------------------------------------------------------------------------
def test_due_times_in_a_zone_with_daylight_saving() -> None:
    paris = Schedule(cron="0 6 * * *", timezone="Europe/Paris")
    # 29 March 2026: Paris moves from UTC+1 to UTC+2, so 06:00 there is 05:00Z, then 04:00Z
    assert paris.due_after(at("2026-03-28T00:00:00Z")) == at("2026-03-28T05:00:00Z")
    assert paris.due_after(at("2026-03-28T05:00:00Z")) == at("2026-03-29T04:00:00Z")  # strictly after
    assert paris.due_at_or_before(at("2026-03-29T04:00:00Z")) == at("2026-03-29T04:00:00Z")  # at: itself
    assert paris.due_at_or_before(at("2026-03-29T03:59:59.999999Z")) == at("2026-03-28T05:00:00Z")
    # 25 October 2026: back to UTC+1
    assert paris.due_after(at("2026-10-25T00:00:00Z")) == at("2026-10-25T05:00:00Z")
    assert paris.due_at_or_before(at("2026-10-25T04:59:00Z")) == at("2026-10-24T04:00:00Z")
    assert paris.due_after(at("2026-03-28T00:00:00Z")).tzinfo is UTC
    # croniter's rules for a time in the hour skipped (the first time after it) or repeated (both), as documented
    night = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    assert night.due_after(at("2026-03-28T12:00:00Z")) == at("2026-03-29T01:00:00Z")  # 03:00 CEST
    assert night.due_after(at("2026-10-25T00:00:00Z")) == at("2026-10-25T00:30:00Z")  # 02:30 CEST
    assert night.due_after(at("2026-10-25T00:30:00Z")) == at("2026-10-25T01:30:00Z")  # 02:30 CET


def test_the_seconds_field_is_last_and_times_are_utc_whatever_the_zone_given() -> None:
    every_2s = Schedule(cron="* * * * * */2")
    start = at("2026-11-29T06:00:00.500000Z")
    assert every_2s.due_after(start) == at("2026-11-29T06:00:02Z")
    assert every_2s.due_at_or_before(start) == at("2026-11-29T06:00:00Z")
    assert every_2s.due_after(datetime.fromisoformat("2026-11-29T07:00:01+01:00")) == at("2026-11-29T06:00:02Z")
    assert Schedule(cron="@daily").due_after(start) == at("2026-11-30T00:00:00Z")


def test_jitter_is_deterministic_within_its_range_and_spread() -> None:
    schedule = Schedule(cron="0 6 * * *", jitter_s=600)
    due = at("2026-11-29T06:00:00Z")
    assert schedule.jitter("morning", due) == Schedule(cron="0 6 * * *", jitter_s=600).jitter("morning", due)
    assert schedule.fire_time("morning", due) == due + timedelta(seconds=schedule.jitter("morning", due))
    values = [schedule.jitter(f"task-{i}", due) for i in range(300)]
    assert all(0 <= v < 600 for v in values)
    assert min(values) < 60 and max(values) > 540 and len(set(values)) == 300
    assert schedule.jitter("morning", due) != schedule.jitter("morning", due + timedelta(days=1))
    assert Schedule(cron="0 6 * * *").fire_time("morning", due) == due  # no jitter: on the due time


def test_jitter_is_the_same_in_another_process() -> None:
    """Another server computes the same start (no per-process hash seed in it)."""
    code = ("from datetime import datetime; from warmup.tasks.schedule import Schedule; "
            "print(repr(Schedule('0 6 * * *', jitter_s=600).jitter('morning', "
            "datetime.fromisoformat('2026-11-29T06:00:00+00:00'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(PYTHONHASHSEED="12345"),
                         capture_output=True, text=True, timeout=60, check=True).stdout
    here = Schedule(cron="0 6 * * *", jitter_s=600).jitter("morning", at("2026-11-29T06:00:00Z"))
    assert float(out) == here and 0 < here < 600


# -- what the log says was fired -------------------------------------------------------------------
def _run_started(run_id: str, task_id: str, **origin: str) -> dict[str, object]:
    return {"run_id": run_id, "task_id": task_id, "task_name": task_id, "accounts": ["alice"], "steps": 1,
            "concurrency": 1, "host": "h", "pid": 1, "task": None, "resumed_from": None, **origin}


def test_last_scheduled_reads_the_latest_due_fired_per_task(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert last_scheduled(as_log(path)) == {}  # no log yet
    appender = as_log(path).appender()
    try:
        appender.emit("run_started", **_run_started("r1", "morning", trigger="schedule",
                                                     scheduled_for="2026-11-29T06:00:00.000000Z"))
        appender.emit("run_started", **_run_started("r2", "morning", trigger="schedule",
                                                     scheduled_for="2026-11-28T06:00:00.000000Z"))  # older, later
        appender.emit("run_started", **_run_started("r3", "morning", trigger="cli"))
        appender.emit("run_started", **_run_started("r4", "morning", trigger="api"))
        appender.emit("run_started", **_run_started("r5", "evening", trigger="schedule",
                                                     scheduled_for="2026-11-28T18:00:00.000000Z"))
        appender.emit("run_finished", run_id="r5", status="COMPLETED", counts={})
        appender.append_line(b'{"type": "run_started", "trigger": "schedule", "task_id": "bad", "scheduled_for": "x"}')
        appender.append_line(b'{"type": "run_started", "trigger": "schedule", "task_id": "bad", '
                             b'"scheduled_for": "2026-13-40T06:00:00.000000Z"}')
        appender.append_line(b'not json "run_started" {')
        appender.append_line(b'["run_started"]')
    finally:
        appender.close()
    assert last_scheduled(as_log(path)) == {
        "morning": at("2026-11-29T06:00:00Z"), "evening": at("2026-11-28T18:00:00Z"),
    }


# -- the scheduler on a test clock -----------------------------------------------------------------
class Harness:
    """A Scheduler on a test clock: ``sleep`` moves the clock on at once, until ``until``, where it
    stops the scheduler. Records each start (task, due, clock) and each line said."""

    def __init__(self, now: str, schedules: Mapping[str, Schedule], *, last_fired: Mapping[str, datetime] = {},
                 running: Callable[[str], str | None] = lambda task_id: None,
                 start: Callable[[str, datetime], Awaitable[str | None]] | None = None) -> None:
        self.now = at(now)
        self.schedules = dict(schedules)
        self.starts: list[tuple[str, datetime, datetime]] = []
        self.said: list[str] = []
        self.sleeps: list[float] = []
        self.until = self.now
        self._start = start
        self.scheduler = Scheduler(tasks=lambda: self.schedules, start=self.start, running=running,
                                   last_fired=last_fired, say=self.said.append, clock=lambda: self.now,
                                   sleep=self.sleep)

    async def start(self, task_id: str, due: datetime) -> str | None:
        self.starts.append((task_id, due, self.now))
        if self._start is not None:
            return await self._start(task_id, due)
        return f"run-{len(self.starts)}"

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.now >= self.until:
            await asyncio.Event().wait()  # (cancelled by run_until)
        self.now += timedelta(seconds=seconds)

    def run_until(self, until: str) -> None:
        self.until = at(until)

        async def main() -> None:
            task = asyncio.create_task(self.scheduler.run())
            while self.now < self.until and not task.done():
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(asyncio.wait_for(main(), 60))

    def dues(self, task_id: str = "morning") -> list[datetime]:
        return [due for t, due, _ in self.starts if t == task_id]


DAILY = Schedule(cron="0 6 * * *")


def test_each_due_fires_at_its_fire_time_once_and_sleeps_are_bounded() -> None:
    jittered = Schedule(cron="0 6 * * *", jitter_s=600)
    h = Harness("2026-11-29T05:00:00Z", {"morning": jittered, "evening": Schedule(cron="0 18 * * *")})
    first = h.scheduler.next_fire("morning")
    assert first == jittered.fire_time("morning", at("2026-11-29T06:00:00Z")) and first > at("2026-11-29T06:00:00Z")
    h.run_until("2026-12-01T12:00:00Z")
    assert h.dues("morning") == [at("2026-11-29T06:00:00Z"), at("2026-11-30T06:00:00Z"), at("2026-12-01T06:00:00Z")]
    assert h.dues("evening") == [at("2026-11-29T18:00:00Z"), at("2026-11-30T18:00:00Z")]
    for task_id, due, clock in h.starts:
        expected = jittered.fire_time(task_id, due) if task_id == "morning" else due
        assert clock == expected, (task_id, due)
    assert h.scheduler.next_fire("morning") == jittered.fire_time("morning", at("2026-12-02T06:00:00Z"))
    assert max(h.sleeps) <= MAX_SLEEP_S
    assert "schedule: task morning started run run-1 (due at 2026-11-29T06:00:00Z)" in h.said


def test_a_missed_schedule_catches_up_once_at_start() -> None:
    h = Harness("2026-11-29T09:00:00Z", {"morning": DAILY},
                last_fired={"morning": at("2026-11-25T06:00:00Z")})  # down for 3 firings
    h.run_until("2026-11-30T07:00:00Z")
    assert [(due, clock) for _, due, clock in h.starts] == [
        (at("2026-11-29T06:00:00Z"), at("2026-11-29T09:00:00Z")),  # once, now, for the latest
        (at("2026-11-30T06:00:00Z"), at("2026-11-30T06:00:00Z")),
    ]
    assert h.said[0] == "schedule: task morning missed its firing due at 2026-11-29T06:00:00Z: it runs once now"


def test_no_catch_up_with_catch_up_false_nor_for_a_task_never_fired() -> None:
    h = Harness("2026-11-29T09:00:00Z", {"morning": Schedule(cron="0 6 * * *", catch_up=False), "evening": DAILY},
                last_fired={"morning": at("2026-11-25T06:00:00Z")})
    h.run_until("2026-11-30T07:00:00Z")
    assert [(t, due, clock) for t, due, clock in h.starts] == [
        ("evening", at("2026-11-30T06:00:00Z"), at("2026-11-30T06:00:00Z")),
        ("morning", at("2026-11-30T06:00:00Z"), at("2026-11-30T06:00:00Z")),
    ]
    assert h.said[0] == ("schedule: task morning missed its firing due at 2026-11-29T06:00:00Z: skipped "
                         "(catch_up = false)")


def test_a_task_still_running_is_skipped_and_said() -> None:
    in_flight = {"morning": "20261129T060000-abcdef"}  # a run that ends after the first firing
    h = Harness("2026-11-29T05:00:00Z", {"morning": DAILY}, running=lambda task_id: in_flight.pop(task_id, None))
    h.run_until("2026-11-30T07:00:00Z")
    assert "schedule: task morning is still running (run 20261129T060000-abcdef): the firing due at " \
           "2026-11-29T06:00:00Z is skipped" in h.said
    assert h.dues() == [at("2026-11-30T06:00:00Z")]  # not the skipped one, later or twice


def test_a_failed_start_is_said_and_the_scheduler_goes_on() -> None:
    outcomes: list[object] = [None, RuntimeError("no such task file"), "run-3"]

    async def start(task_id: str, due: datetime) -> str | None:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]

    h = Harness("2026-11-29T05:00:00Z", {"morning": DAILY}, start=start)
    h.run_until("2026-12-01T07:00:00Z")
    assert h.dues() == [at("2026-11-29T06:00:00Z"), at("2026-11-30T06:00:00Z"), at("2026-12-01T06:00:00Z")]
    assert "schedule: task morning: the firing due at 2026-11-29T06:00:00Z could not start" in h.said
    assert ("schedule: task morning: the firing due at 2026-11-30T06:00:00Z could not start (no such task file)"
            in h.said)


def test_a_clock_jump_fires_once_for_the_latest_due() -> None:
    h = Harness("2026-11-29T05:00:00Z", {"morning": DAILY})

    async def jump(seconds: float) -> None:  # the machine sleeps for three days at its first pause
        h.sleeps.append(seconds)
        if len(h.sleeps) == 1:
            h.now += timedelta(days=3)
        elif h.now >= h.until:
            await asyncio.Event().wait()
        else:
            h.now += timedelta(seconds=seconds)

    h.scheduler._sleep = jump
    h.run_until("2026-12-02T12:00:00Z")
    assert [(due, clock) for _, due, clock in h.starts] == [
        (at("2026-12-01T06:00:00Z"), at("2026-12-02T05:00:00Z")),  # the three missed dues: once, for the latest
        (at("2026-12-02T06:00:00Z"), at("2026-12-02T06:00:00Z")),
    ]
    assert any(line.startswith("schedule: task morning is late") for line in h.said)


def test_a_restarted_scheduler_never_fires_a_due_twice(tmp_path: Path) -> None:
    """Fired dues go to a real log as `warmup run` writes them; a server restarted from it goes on."""
    every_minute = Schedule(cron="* * * * *", jitter_s=30)
    first = Harness("2026-11-29T06:00:10Z", {"morning": every_minute})
    first.run_until("2026-11-29T06:05:00Z")
    assert len(first.dues()) >= 4 and len(set(first.dues())) == len(first.dues())
    log = as_log(tmp_path / "events.jsonl")
    appender = log.appender()
    try:
        for i, (task_id, due, _) in enumerate(first.starts):
            appender.emit("run_started", **_run_started(f"r{i}", task_id, trigger="schedule",
                                                         scheduled_for=log_time(due)))
    finally:
        appender.close()
    fired = last_scheduled(log)
    assert fired == {"morning": max(first.dues())}
    second = Harness(log_time(first.now), {"morning": every_minute}, last_fired=fired)
    second.run_until("2026-11-29T06:10:00Z")
    assert second.dues() and min(second.dues()) > max(first.dues())
    assert len(set(second.dues())) == len(second.dues())


def test_a_due_the_log_says_was_fired_is_not_fired_again_after_the_clock_went_back() -> None:
    h = Harness("2026-11-29T05:00:00Z", {"morning": DAILY}, last_fired={"morning": at("2026-11-29T06:00:00Z")})
    h.run_until("2026-11-30T07:00:00Z")
    assert h.dues() == [at("2026-11-30T06:00:00Z")]


def test_wake_reads_the_tasks_again() -> None:
    """A task added while the scheduler sleeps is scheduled from then on (no catch-up), without waiting."""
    now = [at("2026-11-29T06:00:00.500000Z")]
    schedules: dict[str, Schedule] = {}
    starts: list[tuple[str, datetime]] = []

    async def start(task_id: str, due: datetime) -> str:
        starts.append((task_id, due))
        return "run-1"

    async def never(seconds: float) -> None:  # only wake() ends a pause here
        await asyncio.Event().wait()

    scheduler = Scheduler(tasks=lambda: schedules, start=start, running=lambda task_id: None, last_fired={},
                          say=lambda line: None, clock=lambda: now[0], sleep=never)

    async def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.05)
        schedules["morning"] = Schedule(cron="* * * * * */2")
        scheduler.wake()
        await until(lambda: scheduler._next.get("morning") is not None)
        assert scheduler.next_fire("morning") == at("2026-11-29T06:00:02Z") and starts == []
        now[0] = at("2026-11-29T06:00:02.1Z")
        scheduler.wake()
        await until(lambda: bool(starts))
        assert starts == [("morning", at("2026-11-29T06:00:02Z"))]
        assert scheduler.next_fire("morning") == at("2026-11-29T06:00:04Z")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), 60))


def test_on_the_real_clock_a_schedule_every_second_fires_twice() -> None:
    starts: list[tuple[datetime, datetime]] = []
    said: list[str] = []

    async def start(task_id: str, due: datetime) -> str:
        starts.append((due, datetime.now(UTC)))
        return f"run-{len(starts)}"

    async def main() -> None:
        scheduler = Scheduler(tasks=lambda: {"tick": Schedule(cron="* * * * * */1")}, start=start,
                              running=lambda task_id: None, last_fired={}, say=said.append)
        task = asyncio.create_task(scheduler.run())
        deadline = time.monotonic() + 20
        while len(starts) < 2:
            assert time.monotonic() < deadline and not task.done(), said
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (due1, at1), (due2, at2) = starts[:2]
    assert due2 > due1 and due1.microsecond == 0 == due2.microsecond
    assert at1 >= due1 and at2 >= due2
