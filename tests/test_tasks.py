"""Task files: what loads, what is refused (one line naming the file and the problem, exit 2), secrets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Workdir, cli_env, warmup

from warmup.errors import UsageError
from warmup.tasks import REDACTED, Scrubber, load_task

GOOD = """
id = "morning"
name = "Morning warm-up"
concurrency = 2
account_timeout_s = 30
retries = 1
accounts_file = "accounts.csv"

[[accounts]]
id = "alice"
storage_state = "states/${account.id}.json"
vars = { user = "alice", page = "feed", password = "${env.ALICE_PW}" }

[[steps]]
goto = "http://127.0.0.1:8000/${account.page}"
[[steps]]
fill = "#user"
value = "${account.user}"
[[steps]]
fill = "#pass"
value = "${account.password}"
optional = true
timeout_ms = 500
[[steps]]
press = "Enter"
selector = "#pass"
[[steps]]
scroll = 3
pause_ms = 100
[[steps]]
expect_text = { selector = "#who", text = "${account.id}" }
[[steps]]
screenshot = "after-${account.id}"
"""


def test_a_good_task_loads_with_defaults_accounts_file_and_variables(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ALICE_PW", "pw-from-env")
    (tmp_path / "accounts.csv").write_text("id,user,page,password,api_token\nbob,bob,home,pw-LITERAL,tok-LITERAL\n")
    path = tmp_path / "morning.toml"
    path.write_text(GOOD)
    task = load_task(path)
    assert [a.id for a in task.accounts] == ["alice", "bob"]
    assert (task.id, task.name, task.concurrency, task.retries, task.account_timeout_s) == (
        "morning", "Morning warm-up", 2, 1, 30.0,
    )  # fmt: skip
    assert [s.action for s in task.steps] == ["goto", "fill", "fill", "press", "scroll", "expect_text", "screenshot"]
    assert task.steps[2].optional and task.steps[2].timeout_ms == 500 and task.steps[0].timeout_ms == 10_000
    alice, bob = task.accounts
    assert task.step_value(task.steps[0], "", bob) == "http://127.0.0.1:8000/home"
    assert task.step_value(task.steps[5], "", alice) == {"selector": "#who", "text": "alice"}
    assert task.storage_state_path(alice) == (tmp_path / "states" / "alice.json").resolve()
    assert task.storage_state_path(bob) is None
    assert task.env_names == {"ALICE_PW"}

    record = task.record()
    assert record["steps"][1] == {"fill": "#user", "value": "${account.user}"}
    assert record["accounts"][0]["vars"]["password"] == "${env.ALICE_PW}"  # unresolved reference, kept
    assert record["accounts"][1]["vars"]["api_token"] == REDACTED  # a credential-named literal, hidden
    assert record["accounts"][1]["vars"]["password"] == REDACTED
    assert {value for _, value in task.secret_sources(env={})} == {"tok-LITERAL", "pw-LITERAL"}
    assert task.step_value(task.steps[2], "value", bob) == "pw-LITERAL"
    assert task.step_value(task.steps[2], "value", alice) == "pw-from-env"


def test_the_id_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "evening-run.toml"
    path.write_text('[[accounts]]\nid = "a"\n[[steps]]\nwait_ms = 1\n')
    task = load_task(path)
    assert (task.id, task.name, task.concurrency) == ("evening-run", "evening-run", 4)


def test_the_scrubber_hides_secret_values_and_their_url_encodings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOKEN_X", "s3cr et/&")
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "a"\n[[steps]]\ngoto = "http://127.0.0.1/?t=${env.TOKEN_X}"\n')
    scrub = load_task(path).scrubber()
    text = "at http://h/?t=s3cr%20et%2F%26 and s3cr+et%2F%26 and s3cr et/&"
    assert scrub(text) == "at http://h/?t=*** and *** and ***"
    assert scrub.deep({"a": ["s3cr et/&", 1, None]}) == {"a": ["***", 1, None]}


def test_jsonl_accounts_file(tmp_path: Path) -> None:
    (tmp_path / "acc.jsonl").write_text('{"id": "a1", "vars": {"n": 1}}\n\n{"id": "a2", "n": "two"}\n')
    path = tmp_path / "t.toml"
    path.write_text('accounts_file = "acc.jsonl"\n[[steps]]\ngoto = "http://127.0.0.1/${account.n}"\n')
    task = load_task(path)
    assert [task.step_value(task.steps[0], "", a) for a in task.accounts] == ["http://127.0.0.1/1", "http://127.0.0.1/two"]


STEP = '[[steps]]\ngoto = "http://127.0.0.1/"\n'
ACCOUNT = '[[accounts]]\nid = "alice"\n'

# (name, task file text, extra files, the part of the message that must be there)
BAD_TASKS = [
    ("toml-syntax", ACCOUNT + "[[steps]\ngoto = 1\n", {}, "not valid TOML"),
    ("unknown-action", ACCOUNT + '[[steps]]\nteleport = "#x"\n', {}, "step 1: unknown action 'teleport'"),
    ("missing-field", ACCOUNT + STEP + '[[steps]]\nfill = "#user"\n', {}, "step 2 (fill): missing field 'value'"),
    ("mistyped-field", ACCOUNT + STEP + "[[steps]]\nwait_ms = \"soon\"\n", {}, "step 2 (wait_ms): wait_ms must be"),
    ("mistyped-top", 'concurrency = "many"\n' + ACCOUNT + STEP, {}, "concurrency must be an integer"),
    ("unknown-key", 'concurency = 2\n' + ACCOUNT + STEP, {}, "unknown key 'concurency'"),
    ("two-actions", ACCOUNT + '[[steps]]\nclick = "#a"\nhover = "#b"\n', {}, "one action per step"),
    (
        "undefined-account-var",
        ACCOUNT + '[[steps]]\ngoto = "http://127.0.0.1/${account.page}"\n',
        {},
        "step 1 (goto): ${account.page} is not defined for account 'alice'",
    ),
    (
        "undefined-env",
        ACCOUNT + '[[steps]]\nfill = "#p"\nvalue = "${env.WARMUP_TEST_SURELY_UNSET}"\n',
        {},
        "environment variable WARMUP_TEST_SURELY_UNSET is not set",
    ),
    ("unknown-variable", ACCOUNT + '[[steps]]\ngoto = "${site.url}"\n', {}, "unknown variable ${site.url}"),
    ("duplicate-id", ACCOUNT + ACCOUNT + STEP, {}, "duplicate account id 'alice'"),
    (
        "duplicate-id-in-file",
        'accounts_file = "acc.csv"\n' + ACCOUNT + STEP,
        {"acc.csv": "id\nbob\nalice\n"},
        "duplicate account id 'alice' (accounts[0] and acc.csv line 3)",
    ),
    ("bad-account-id", '[[accounts]]\nid = "../etc"\n' + STEP, {}, "account id '../etc' is not allowed"),
    ("missing-accounts-file", 'accounts_file = "nope.csv"\n' + STEP, {}, "nope.csv: no such file"),
    ("unreadable-accounts-file", 'accounts_file = "acc.csv"\n' + STEP, {"acc.csv": None}, "cannot read it"),
    ("accounts-file-no-id", 'accounts_file = "acc.csv"\n' + STEP, {"acc.csv": "name\nx\n"}, "one of them 'id'"),
    ("no-steps", ACCOUNT, {}, "no steps"),
    ("no-accounts", STEP, {}, "no accounts"),
    (
        "secret-in-screenshot-name",
        ACCOUNT + '[[steps]]\nscreenshot = "shot-${env.HOME}"\n',
        {},
        "a screenshot name cannot use ${env.*}",
    ),
    ("bad-screenshot-name", ACCOUNT + '[[steps]]\nscreenshot = "a/b"\n', {}, "screenshot name 'a/b'"),
    (
        "secret-in-state-path",
        'storage_state = "s/${account.pw}.json"\n[[accounts]]\nid = "a"\nvars = { pw = "${env.HOME}" }\n' + STEP,
        {},
        "storage_state cannot use ${env.*}",
    ),
    (
        "bad-id-in-accounts-file",
        'accounts_file = "acc.csv"\n' + STEP,
        {"acc.csv": "id,user\nok,u\nnot ok,v\n"},
        "accounts_file",
    ),
    ("negative-retries", "retries = -1\n" + ACCOUNT + STEP, {}, "retries must be 0 or more"),
    (
        "credential-in-screenshot-name",
        '[[accounts]]\nid = "eve"\nvars = { password = "hunter2xyz" }\n'
        '[[steps]]\nscreenshot = "s-${account.password}"\n',
        {},
        "the screenshot name uses a credential variable",
    ),
    ("huge-number", ACCOUNT + "[[steps]]\nscroll = 2\npause_ms = 99999999999999999999\n", {},
     "steps[0].pause_ms = 99999999999999999999 is too large a number"),
    ("nan-timeout", "account_timeout_s = nan\n" + ACCOUNT + STEP, {}, "account_timeout_s must be a finite number"),
    # $ matched before a trailing newline: this id made a folder with a newline in its name
    ("newline-account-id", '[[accounts]]\nid = "alice\\n"\n' + STEP, {}, "account id 'alice\\n' is not allowed"),
    ("newline-task-id", 'id = "t\\n"\n' + ACCOUNT + STEP, {}, "id 't\\n' is not allowed"),
    ("newline-in-accounts-file", 'accounts_file = "a.jsonl"\n' + STEP, {"a.jsonl": '{"id": "bob\\n"}\n'},
     "account id 'bob\\n' is not allowed"),
    # Node clamps a timeout above 2^31-1 ms to 1 ms (with a warning): refused instead
    ("huge-timeout", "timeout_ms = 2147483648\n" + ACCOUNT + STEP, {}, "timeout_ms must be from 1 to 2147483647"),
    ("huge-step-timeout", ACCOUNT + STEP + "timeout_ms = 99999999999\n", {}, "step 1 (goto): timeout_ms must be"),
    ("huge-wait", ACCOUNT + "[[steps]]\nwait_ms = 2147483648\n", {}, "wait_ms must be from 0 to 2147483647"),
    ("huge-pause", ACCOUNT + "[[steps]]\nscroll = 1\npause_ms = 2147483648\n", {}, "pause_ms must be from 0 to"),
    ("deep-toml", "x = " + "[" * 5000 + "]" * 5000 + "\n" + ACCOUNT + STEP, {}, "values nest too deeply"),
    ("nested-toml", "x = " + "[" * 200 + "]" * 200 + "\n" + ACCOUNT + STEP, {}, "nests more than 32 levels deep"),
]


@pytest.mark.parametrize(("name", "text", "files", "message"), BAD_TASKS, ids=[b[0] for b in BAD_TASKS])
def test_a_bad_task_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, name: str, text: str, files: dict[str, str | None], message: str
) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    for file_name, content in files.items():
        target = tmp_path / file_name
        if content is None:  # unreadable: a directory where a file should be
            target.mkdir()
        else:
            target.write_text(content)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={})
    text_of = str(caught.value)
    assert message in text_of
    assert str(path) in text_of and "\n" not in text_of


@pytest.mark.parametrize(
    "name", ["toml-syntax", "missing-field", "undefined-env", "duplicate-id", "deep-toml", "newline-account-id"]
)
def test_the_cli_exits_2_with_the_message_and_appends_nothing(work: Workdir, name: str) -> None:
    _, text, _, message = next(b for b in BAD_TASKS if b[0] == name)
    task = work.task(text, f"{name}.toml")
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(WARMUP_BROWSER="/nonexistent/chromium"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warmup: task file ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not work.log.exists() and not work.artifacts.exists()


def test_the_scrubber_catches_a_secret_cut_short_or_with_its_whitespace_collapsed(tmp_path: Path) -> None:
    from warmup.tasks import Scrubber

    scrub = Scrubber(["Sentinel-S3cret", "two  spaces"])
    assert scrub("the text is 'aaa Sentin…', which") == "the text is 'aaa ***…', which"
    assert scrub("got two spaces") == "got ***"
    assert scrub("a…b, Se…") == "a…b, Se…"  # two characters are not a secret's start
    assert scrub("Sentinel-S3cret and Sentinel-S3cr…") == "*** and ***…"


@pytest.mark.parametrize("bad", ["../../etc", "..", "a/../../b", "/etc/passwd", ".hidden", "a\\b", "x" * 65])
def test_account_ids_that_could_leave_the_artifacts_folder_are_refused(tmp_path: Path, bad: str) -> None:
    import json

    for name, text, extra in (
        ("t1.toml", f'[[accounts]]\nid = {json.dumps(bad)}\n' + STEP, {}),
        ("t2.toml", 'accounts_file = "acc.jsonl"\n' + STEP, {"acc.jsonl": json.dumps({"id": bad}) + "\n"}),
    ):
        for file_name, content in extra.items():
            (tmp_path / file_name).write_text(content)
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(UsageError, match="is not allowed"):
            load_task(path, env={})


def test_a_recorded_task_is_checked_like_a_file(tmp_path: Path) -> None:
    from warmup.tasks import task_from_record

    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "a"\n[[accounts]]\nid = "b"\n' + STEP)
    record = load_task(path, env={}).record()
    assert [a.id for a in task_from_record(record, ["b"], where="w", env={}).accounts] == ["b"]
    record["accounts"][1]["id"] = "../../etc"
    with pytest.raises(UsageError, match=r"^w: accounts\[0\]: account id '../../etc' is not allowed"):
        task_from_record(record, ["../../etc"], where="w", env={})


def test_the_scrubber_catches_a_secret_as_a_browser_encodes_it_in_a_url() -> None:
    secret = "Sk r&t/é#Zq9"
    scrub = Scrubber([secret])
    # Chromium encodes the space and the é, and leaves & / # as they are
    url = "http://127.0.0.1:8765/login.html?q=x&r="
    assert scrub(url + "Sk%20r&t/%C3%A9#Zq9") == url + "***"
    assert scrub("lower hex: Sk%20r%26t%2f%c3%a9%23Zq9") == "lower hex: ***"
    # the fragment is never sent, so a server echoes the secret cut there: its pieces are secrets too
    assert "Sk r" not in scrub("404 for /nothere?q=Sk%20r&t/%C3%A9").replace("%20", " ")


def test_the_largest_timeout_node_takes_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f"timeout_ms = {2**31 - 1}\n" + ACCOUNT + "[[steps]]\nwait_ms = 0\n")
    assert load_task(path, env={}).steps[0].timeout_ms == 2**31 - 1


def test_a_resume_id_with_a_trailing_newline_is_not_a_run_id(work: Workdir) -> None:
    result = warmup("run", "--resume", "20261129T070000-1a2b3c\n", "--log", str(work.log), "--no-project",
                    env=cli_env(WARMUP_BROWSER="/nonexistent/chromium"))
    assert result.returncode == 2 and "is not a run id" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not work.log.exists()


# -- secrets inside ids and file names (issue 9, defect 2) ------------------------------------------
FILL_SECRET = '[[steps]]\nfill = "#p"\nvalue = "${env.PW}"\n'


@pytest.mark.parametrize(
    ("text", "files", "place"),
    [
        ('[[accounts]]\nid = "demo1"\n' + FILL_SECRET, {}, "accounts[0].id"),
        ('id = "the-demo-task"\n' + ACCOUNT + FILL_SECRET, {}, "appears in id,"),
        ('name = "A demo"\n' + ACCOUNT + FILL_SECRET, {}, "appears in name,"),
        ('accounts_file = "demo.csv"\n' + FILL_SECRET, {"demo.csv": "id\nbob\n"}, "appears in accounts_file"),
        ('accounts_file = "a.csv"\n' + FILL_SECRET, {"a.csv": "id\nbob\ndemo\n"}, "accounts[1].id"),
        ('storage_state = "s/${account.id}-demo.json"\n' + ACCOUNT + FILL_SECRET, {}, "appears in storage_state"),
        (
            '[[accounts]]\nid = "de"\nvars = { tail = "mo" }\nstorage_state = "s/${account.id}${account.tail}.json"\n'
            + FILL_SECRET,
            {},
            "appears in the storage_state of account 'de'",
        ),
        (
            '[[accounts]]\nid = "bob"\nvars = { tag = "demo" }\n' + FILL_SECRET
            + '[[steps]]\nscreenshot = "s-${account.tag}"\n',
            {},
            "the screenshot name of step 2 (screenshot) for account 'bob'",  # file names before the rest
        ),
        ('[[accounts]]\nid = "bob"\nvars = { tag = "demo" }\n' + FILL_SECRET, {}, "accounts[0].vars.tag"),
        (ACCOUNT + FILL_SECRET + '[[steps]]\ngoto = "http://127.0.0.1/demo"\n', {}, "steps[1].goto"),
    ],
    ids=["account-id", "task-id", "name", "accounts-file", "id-in-accounts-file", "storage-state", "rendered-state",
         "var-in-a-screenshot-name", "var-value", "step-literal"],
)
def test_a_secret_value_inside_an_id_or_file_name_is_refused_naming_the_variable(
    tmp_path: Path, text: str, files: dict[str, str], place: str
) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={"PW": "demo"})
    message = str(caught.value)
    assert "the value of ${env.PW} appears in" in message and place in message, message
    assert "demo" not in message.replace(str(path), "").replace("demo.csv", ""), message
    assert "\n" not in message


def test_a_key_that_holds_a_secret_value_is_not_a_place_it_appears(tmp_path: Path) -> None:
    # "password" contains the value "word"; a key is a name the author chose, never a value
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "a"\nvars = { password = "word", word = "x" }\n'
                    '[[steps]]\nfill = "#pw"\nvalue = "${account.password}"\n')
    task = load_task(path, env={})
    assert task.secret_values() == ["word"]
    assert task.record()["accounts"][0]["vars"] == {"password": REDACTED, "word": "x"}


def test_a_short_secret_inside_a_url_warns_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(ACCOUNT + '[[steps]]\ngoto = "https://example.com/"\n' + FILL_SECRET)
    task = load_task(path, env={"PW": "xam"})  # inside "example"
    warning = task.short_secret_warning({"PW": "xam"})
    assert warning is not None and "${env.PW} is shorter than 4 characters" in warning, warning
    assert "may appear unscrubbed in the task's definition" in warning and "xam" not in warning, warning


def test_a_short_secret_inside_an_id_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "acom1"\n' + FILL_SECRET)
    with pytest.raises(UsageError, match=r"the value of \$\{env.PW\} appears in accounts\[0\]\.id"):
        load_task(path, env={"PW": "com"})


def test_a_secret_written_literally_into_a_step_value_is_refused_naming_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "a"\nvars = { password = "hunter2" }\n'
                    '[[steps]]\nfill = "#password"\nvalue = "hunter2"\n')
    with pytest.raises(UsageError) as caught:
        load_task(path, env={})
    message = str(caught.value).replace(str(path), "")
    assert "the value of the variable 'password' of accounts[0] appears in steps[0].value" in message, message
    assert "hunter2" not in message


def test_a_literal_credential_inside_an_account_id_is_refused_without_naming_the_id(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "demo1"\nvars = { password = "demo" }\n' + STEP)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={})
    message = str(caught.value).replace(str(path), "")
    assert "the value of the variable 'password' of accounts[0] appears in accounts[0].id" in message, message
    assert "demo" not in message


def test_a_screenshot_name_that_renders_to_a_secret_is_refused(tmp_path: Path) -> None:
    # the name is built from the account id and a plain variable, neither of which holds the secret alone
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "de"\nvars = { tail = "mo" }\n' + FILL_SECRET
                    + '[[steps]]\nscreenshot = "${account.id}${account.tail}"\n')
    with pytest.raises(UsageError, match=r"appears in the screenshot name of step 2 \(screenshot\) for account 'de'"):
        load_task(path, env={"PW": "demo"})


def test_a_resumed_record_is_checked_against_the_secrets_of_now(tmp_path: Path) -> None:
    from warmup.tasks import task_from_record

    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "demo1"\n' + FILL_SECRET)
    record = load_task(path, env={"PW": "long-enough"}).record()
    with pytest.raises(UsageError, match=r"^w: the value of \$\{env.PW\} appears in accounts\[0\]\.id"):
        task_from_record(record, ["demo1"], where="w", env={"PW": "demo"})


def test_the_cli_refuses_an_account_whose_id_holds_a_secret_in_one_line(work: Workdir) -> None:
    task = work.task('[[accounts]]\nid = "demo1"\n' + FILL_SECRET)
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(PW="demo", WARMUP_BROWSER="/nonexistent/x"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "${env.PW} appears in accounts[0].id" in lines[0], result.stderr
    assert not work.log.exists()


def test_short_secrets_are_named_in_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "a"\nvars = { pin = "${env.PIN}", password = "Zq9" }\n'
                    '[[steps]]\nfill = "#p"\nvalue = "${account.pin}${account.password}${env.LONG_ONE}"\n')
    task = load_task(path, env={"PIN": "7x", "LONG_ONE": "long enough"})
    warning = task.short_secret_warning({"PIN": "7x", "LONG_ONE": "long enough"})
    assert warning is not None and "\n" not in warning
    assert "${env.PIN}, the variable 'password' of accounts[0] are shorter than 4 characters" in warning
    assert "7x" not in warning and "Zq9" not in warning and "LONG_ONE" not in warning
    env = {"PIN": "7xyz", "LONG_ONE": "long enough"}
    assert "password' of accounts[0] is shorter" in (task.short_secret_warning(env) or "")
    path.write_text(path.read_text().replace('password = "Zq9"', 'password = "Zq9-long"'))
    assert load_task(path, env=env).short_secret_warning(env) is None


# -- screenshot names never overwrite (issue 9, defect 6) -------------------------------------------
@pytest.mark.parametrize(
    ("shots", "vars_", "message"),
    [
        (["failure-1"], "", "screenshot name 'failure-1' for account 'alice' is reserved"),
        (["Failure-2"], "", "'Failure-2' for account 'alice' is reserved"),
        (["trace-x"], "", "'trace-x' for account 'alice' is reserved"),
        (["feed-attempt2"], "", "'feed-attempt2' for account 'alice' is reserved"),
        (["failure-${account.n}"], 'n = "1"', "'failure-1' for account 'alice' is reserved"),
        (["a-${account.x}", "a-${account.y}"], 'x = "same", y = "same"',
         "step 1 (screenshot) and step 2 (screenshot) both name their screenshot 'a-same' for account 'alice'"),
        (["Shot", "shot"], "", "both name their screenshot 'shot'"),
        (["feed", "feed"], "", "both name their screenshot 'feed'"),
    ],
    ids=["failure", "failure-case", "trace", "attempt-suffix", "rendered-failure", "rendered-equal", "case-only",
         "same-template"],
)
def test_screenshot_names_that_would_overwrite_a_file_are_refused(
    tmp_path: Path, shots: list[str], vars_: str, message: str
) -> None:
    path = tmp_path / "t.toml"
    text = f'[[accounts]]\nid = "alice"\nvars = {{ {vars_} }}\n'
    text += "".join(f'[[steps]]\nscreenshot = "{name}"\n' for name in shots)
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={})
    assert message in str(caught.value), str(caught.value)


def test_screenshot_names_may_share_a_template_across_accounts(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "a"\n[[accounts]]\nid = "b"\n[[steps]]\nscreenshot = "shot-${account.id}"\n'
                    '[[steps]]\nscreenshot = "feed"\n[[steps]]\nscreenshot = "failure"\n')
    assert len(load_task(path, env={}).steps) == 3


def test_a_task_of_thousands_of_accounts_with_passwords_loads_in_linear_time(tmp_path: Path) -> None:
    # every secret against every id, file name and string of the record, one by one, took 36-57 s for
    # these 10,000 (bench/tasks.py); now about 1 s. CPU time of this process, so other load does not count.
    rows = "".join(f"acct-{i:05d},pw-{i * 7919 % 100_003:06d}-x{i}\n" for i in range(10_000))
    (tmp_path / "a.csv").write_text("id,password\n" + rows)
    path = tmp_path / "t.toml"
    path.write_text('accounts_file = "a.csv"\nstorage_state = "s/${account.id}.json"\n'
                    '[[steps]]\ngoto = "https://example.com/login"\n'
                    '[[steps]]\nfill = "#pw"\nvalue = "${account.password}"\n'
                    '[[steps]]\nscreenshot = "feed-${account.id}"\n')
    started = time.process_time()
    task = load_task(path, env={})
    elapsed = time.process_time() - started
    assert len(task.secret_values()) == 10_000
    assert elapsed < 15, f"{elapsed:.1f} s of CPU for 10,000 accounts"


VARS_TASK = """
id = "with-vars"
[vars]
base = "http://127.0.0.1:8000"
section = "feed"
retries_hint = 3
[[accounts]]
id = "alice"
vars = { page = "${vars.section}" }
storage_state = "states/${vars.section}-${account.id}.json"
[[steps]]
goto = "${vars.base}/${account.page}"
[[steps]]
screenshot = "${vars.section}-${account.id}"
"""


def test_task_vars_fill_steps_names_and_paths_and_are_never_secret(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(VARS_TASK)
    task = load_task(path, env={})
    (alice,) = task.accounts
    assert task.vars == {"base": "http://127.0.0.1:8000", "section": "feed", "retries_hint": "3"}
    assert task.step_value(task.steps[0], "", alice) == "http://127.0.0.1:8000/feed"
    assert task.step_value(task.steps[1], "", alice) == "feed-alice"
    assert task.storage_state_path(alice) == (tmp_path / "states" / "feed-alice.json").resolve()
    assert task.secret_values() == []  # (shown as they are in errors: `HTTP 404 from http://127.0.0.1:8000/nope/`)
    assert task.scrubber()("http://127.0.0.1:8000/feed") == "http://127.0.0.1:8000/feed"
    assert task.record()["vars"] == task.vars


@pytest.mark.parametrize(("text", "said"), [
    ('[vars]\nbase = "${env.BASE}"', "vars.base: a task variable is plain text, it cannot use ${...}"),
    ('[vars]\napi_token = "abc"', "vars.api_token: task variables are never secret; put a credential in ${env.NAME}"),
    ('[vars]\n"bad-name" = "x"', "[vars] name 'bad-name' is not a variable name"),
    ('[vars]\nbase = ["a"]', "vars.base must be a string or a number, not a list"),
    ('[vars]\nbase = "x"\n[[accounts]]\nid = "a"\n[[steps]]\ngoto = "${vars.nope}/x"',
     "step 1 (goto): ${vars.nope}: no variable 'nope' in the task's [vars]"),
])
def test_bad_task_vars_are_refused_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "task.toml"
    if "[[accounts]]" not in text:
        text += '\n[[accounts]]\nid = "a"\n[[steps]]\ngoto = "http://127.0.0.1:8000/"'
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={"BASE": "http://x"})
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_task_vars_survive_the_record_a_resume_reads(tmp_path: Path) -> None:
    from warmup.tasks import task_from_record

    path = tmp_path / "task.toml"
    path.write_text(VARS_TASK)
    task = load_task(path, env={})
    again = task_from_record(task.record(), ["alice"], where="run r1", env={})
    assert again.vars == task.vars
    assert again.step_value(again.steps[0], "", again.accounts[0]) == "http://127.0.0.1:8000/feed"


@pytest.mark.browser
def test_a_url_from_task_vars_reads_plainly_in_errors(site: str, work: Workdir) -> None:
    """The issue's complaint: a base URL from ${env.X} read `HTTP 404 from ***/nope/`; from [vars] it reads as it is."""
    task = work.task(f"""
id = "plain"
[vars]
base = "{site}"
[[accounts]]
id = "v1"
[[steps]]
goto = "${{vars.base}}/feed"
[[steps]]
goto = "${{vars.base}}/nope/"
""")
    done = warmup(*work.run_args(task))
    assert done.returncode == 1
    (finished,) = [e for e in work.events() if e["type"] == "account_finished"]
    assert f"HTTP 404 Not Found from {site}/nope/" in finished["error"], finished["error"]
    (started,) = [e for e in work.events() if e["type"] == "run_started"]
    assert started["task"]["vars"] == {"base": site}
