"""Audit rows that are rules of the whole CLI: output, colour, quiet/verbose, exit codes, links, modes, secrets.

Each test names the rows of ``new-user-audit.md`` it guards. The mechanisms live in ``cli/_output.py``,
``cli/_app.py``, ``core/safety.py``, ``core/jsonio.py`` and ``core/outputs.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from conftest import REPO_ROOT, definition, subprocess_env, write_definition, invoke as wangp, strict_json, sigint_default
from wangp_cli.cli import app
from wangp_cli.core import jsonio, outputs, safety
from wangp_cli.core.errors import WangpError

runner = CliRunner()






# -- rows 16, 17: secrets redacted, control characters escaped ----------------------------------------------------

@pytest.mark.parametrize("text, secret, shown", [
    ("http://user:secretpass@127.0.0.1:8765/auth/x.safetensors", "secretpass", "http://***@127.0.0.1:8765/auth/"),
    ("HTTPS://me:pw@huggingface.co/r/resolve/main/x", "me:pw", "HTTPS://***@huggingface.co/"),
    ("https://h/x_bf16.safetensors?token=hf_SECRETTOKEN123&rev=1", "SECRETTOKEN", "?token=***&rev=1"),
    ("https://s3/x?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA", "abcdef0123", "X-Amz-Signature=***"),
    ("error: 401 with hf_abcdefghijklmnop set", "abcdefghijklmnop", "hf_***"),
    ("Authorization: Bearer abcdefghijklmnopq", "abcdefghijklmnopq", "Bearer ***"),
])
def test_redact_hides_credentials(text, secret, shown):
    assert secret not in safety.redact(text)
    assert shown in safety.redact(text)


def test_redact_leaves_plain_urls_alone():
    url = "https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/x_bf16.safetensors?download=true"
    assert safety.redact(url) == url
    assert safety.redact("user@example.org wrote") == "user@example.org wrote"


@pytest.mark.parametrize("raw, escaped", [
    ("evil\x1b[31mRED", "evil\\x1b[31mRED"), ("a\nb", "a\\nb"), ("a\rb", "a\\rb"), ("a\x00b", "a\\x00b"),
    ("abc\u202edef", "abc\\u202edef"), ("x\u2066y", "x\\u2066y"), ("lone\ud800", "lone\\ud800"),
    ("caf\u00e9 \u4e2d", "caf\u00e9 \u4e2d"),
])
def test_escape_controls(raw, escaped):
    assert safety.escape_controls(raw) == escaped


def test_secrets_and_controls_in_every_output_channel(home, capsys):
    """Rows 16/17 at the mechanism: emit, emit_json, log, warn and fail all redact; text ones also escape."""
    from wangp_cli.cli import _output

    url = "https://u:hunter2@h.example/x?token=tok123456"
    _output.emit(f"name\x1b[2J {url}")
    _output.emit_json({"url": url, url: 1})
    _output.log(None, url)
    _output.warn(url + "\n fake line")
    _output.fail(WangpError(f"cannot reach {url}", hint=url))
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err and "tok123456" not in out + err
    assert "\x1b[2J" not in out and "\\x1b[2J" in out
    assert "\n fake line" not in err
    assert strict_json(out.split("\n", 1)[1])["url"] == "https://***@h.example/x?token=***"


# -- row 19: strict JSON everywhere ---------------------------------------------------------------------------------

def test_json_text_is_strict():
    text = jsonio.json_text({"g": float("nan"), "h": [float("inf"), -float("inf")], "s": "\ud800", "ok": 1.5})
    assert strict_json(text) == {"g": None, "h": [None, None], "s": "\ud800", "ok": 1.5}
    text.encode("utf-8")  # a lone surrogate is written as an escape: the text encodes


def test_emit_json_is_strict(capsys):
    from wangp_cli.cli._output import emit_json

    emit_json({"guidance_scale": float("nan"), "prompt": "\udfff"})
    assert strict_json(capsys.readouterr().out) == {"guidance_scale": None, "prompt": "\udfff"}


# -- row 21: --color -------------------------------------------------------------------------------------------------

def test_color_always_colours_a_pipe_and_never_wins_over_force_color(home):
    write_definition(home, "bad", "{bad")
    always = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), "--color", "always",
                             "validate"], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert "\x1b[" in always.stdout
    never = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), "--color", "never", "validate"],
                           capture_output=True, text=True, env=subprocess_env(FORCE_COLOR="1"), timeout=60)
    assert "\x1b[" not in never.stdout + never.stderr
    assert "E1" in never.stdout


def test_color_never_on_a_terminal(home):
    """A real pseudo-terminal: auto colours it, never does not."""
    import pty

    write_definition(home, "bad", "{bad")

    def run_on_tty(*args):
        leader, follower = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "wangp_cli", "--home", str(home), *args, "validate"],
                                   stdout=follower, stderr=follower, env=subprocess_env())
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
        os.close(leader)
        return b"".join(chunks).decode()

    assert "\x1b[" in run_on_tty()
    assert "\x1b[" not in run_on_tty("--color", "never")


def test_color_other_values_refused(home):
    result = wangp("--color", "banana", "list", home=home)
    assert result.exit_code == 2
    assert "banana" in result.output


# -- row 22: -q / -qq / -v ------------------------------------------------------------------------------------------

def test_quiet_silences_warnings(home):
    write_definition(home, "ok", definition())
    write_definition(home, "broken", "{bad")
    loud = wangp("list", home=home)
    assert "warning:" in loud.stderr
    quiet = wangp("-q", "list", home=home)
    assert quiet.exit_code == 0
    assert "warning:" not in quiet.stderr
    assert "ok" in quiet.stdout  # the command's data stays


def test_verbose_adds_detail(home):
    write_definition(home, "ok", definition())
    plain, verbose = wangp("list", home=home), wangp("-v", "list", home=home)
    assert plain.stdout == verbose.stdout
    assert len(verbose.stderr) > len(plain.stderr)


def test_quiet_is_a_counted_flag_in_help():
    result = wangp("--help")
    assert "<int>" not in result.stdout
    assert "-qq" in result.stdout


# -- row 49: global options after the command -----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["list", "--home", "{home}"], ["list", "--home={home}", "-q"], ["list", "-q", "--home", "{home}", "-a"],
    ["validate", "--home", "{home}", "-q"], ["list", "--color", "never", "--home", "{home}"],
])
def test_global_options_after_the_command(home, args):
    write_definition(home, "ok", definition())
    result = runner.invoke(app, [a.format(home=home) for a in args])
    assert result.exit_code == 0, result.output


def test_global_options_after_the_command_from_the_console_script(home):
    write_definition(home, "mine", definition())
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "list", "--home", str(home)], capture_output=True,
                            text=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "mine" in result.stdout


def test_an_option_value_that_looks_global_stays_with_its_option(home):
    write_definition(home, "mine", definition())
    result = wangp("--home", home, "validate", "-o", home / "-q")
    assert result.exit_code == 0, result.output
    assert (home / "-q").is_file()


# -- rows 51, 52: exit codes 130 and 70, OSError -> one line ---------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time, typer
    from wangp_cli.cli._output import STATE, handle_errors

    @handle_errors
    def work():
        kind = sys.argv[1]
        if kind == "sleep":
            print("ready", flush=True)
            time.sleep(60)
        if kind == "bug":
            raise RuntimeError("boom")
        if kind == "oserror":
            open("/proc/definitely/not/here", "w")

    STATE.command = "download"
    app = typer.Typer()
    app.command()(work)
    app(args=[])
""")


def run_child(kind):
    return subprocess.Popen([sys.executable, "-c", CHILD, kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env(), cwd=REPO_ROOT, preexec_fn=sigint_default)


def test_ctrl_c_is_one_line_and_130():
    child = run_child("sleep")
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert err.strip().splitlines() == [
        "interrupted; rerun the same command to resume: finished files are kept, a partial file resumes where "
        "it stopped"]


def test_internal_error_is_70_with_a_debug_hint():
    child = run_child("bug")
    _, err = child.communicate(timeout=30)
    assert child.returncode == 70
    assert "internal error: RuntimeError: boom" in err and "WANGP_DEBUG=1" in err
    assert "Traceback" not in err


def test_unforeseen_os_error_is_one_clean_line_and_1():
    child = run_child("oserror")
    _, err = child.communicate(timeout=30)
    assert child.returncode == 1
    assert "internal error" not in err and "Traceback" not in err
    assert "'/proc/definitely/not/here'" in err


# -- rows 15, 31: writes through links, umask modes -----------------------------------------------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_files_get_the_umask_mode(tmp_path, umask_022):
    jsonio.write_json(tmp_path / "a.json", {"a": 1})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    os.umask(0o027)
    jsonio.atomic_write_text(tmp_path / "b.txt", "x")
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "a.json"
    path.write_text("{}")
    path.chmod(0o600)
    jsonio.write_json(path, {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o600


def test_rewrite_through_a_symlink_changes_the_target_and_keeps_the_link(tmp_path):
    shared = tmp_path / "shared" / "linked.json"
    shared.parent.mkdir()
    shared.write_text('{"model": {"URLs": ["a"]}}\n')
    link = tmp_path / "finetunes" / "linked.json"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(shared, link.parent))
    assert jsonio.rewrite_json_file(link, ("model", "URLs"), "b")
    assert link.is_symlink()
    assert json.loads(shared.read_text())["model"]["URLs"] == ["a", "b"]


def test_rewrite_of_a_hard_link_keeps_one_file(tmp_path):
    original = tmp_path / "a.json"
    original.write_text('{"model": {"URLs": ["a"]}}\n')
    twin = tmp_path / "b.json"
    os.link(original, twin)
    assert jsonio.rewrite_json_file(twin, ("model", "URLs"), "b")
    assert original.stat().st_ino == twin.stat().st_ino
    assert json.loads(original.read_text())["model"]["URLs"] == ["a", "b"]


def test_atomic_write_refuses_a_directory_and_reports_os_errors(tmp_path):
    (tmp_path / "d.json").mkdir()
    with pytest.raises(WangpError, match="is a directory"):
        jsonio.write_json(tmp_path / "d.json", {})
    with pytest.raises(WangpError, match="cannot write"):
        jsonio.write_json(tmp_path / ("a" * 300 + ".json"), {})
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- the output-path rule (rows 5, 6, 8, 12, 13, 54 use it) ---------------------------------------------------------

def test_check_output_file(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(outputs.OutputError, match="already exists"):
        outputs.check_output_file(tmp_path / "mine.txt", kind="report")
    assert outputs.check_output_file(tmp_path / "mine.txt", kind="report", force=True)
    assert outputs.check_output_file(tmp_path / "mine.txt", kind="report", is_own_kind=lambda p: True)
    with pytest.raises(outputs.OutputError, match="is a directory"):
        outputs.check_output_file(tmp_path, kind="report")
    with pytest.raises(outputs.OutputError, match="255 bytes"):
        outputs.check_output_file(tmp_path / ("x" * 256), kind="report")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(outputs.OutputError, match="not a regular file"):
        outputs.check_output_file(tmp_path / "fifo", kind="report", force=True)
    with pytest.raises(outputs.OutputError, match="not a folder"):
        outputs.check_output_file(tmp_path / "mine.txt" / "x.json", kind="report")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_folder_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(outputs.OutputError, match="permission denied"):
            outputs.check_folder_writable(folder / "outputs")
    finally:
        folder.chmod(0o755)


def test_check_free_space(tmp_path):
    outputs.check_free_space(tmp_path, 1)
    with pytest.raises(outputs.OutputError, match="not enough free space"):
        outputs.check_free_space(tmp_path, 1 << 60)


def test_did_you_mean():
    assert safety.did_you_mean("video_lenght", ["video_length", "prompt"]) == " (did you mean 'video_length'?)"
    assert safety.did_you_mean("T2V", ["t2v", "i2v"]) == " (did you mean 't2v'?)"
    assert safety.did_you_mean("zzz", ["t2v"]) == ""


# -- row 60: set-up ------------------------------------------------------------------------------------------------

def test_make_run_installs_no_test_extras():
    plan = subprocess.run(["make", "-n", "-B", "run"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    install = [line for line in plan.stdout.splitlines() if "pip install" in line]
    assert install and all("[test]" not in line for line in install)


def test_light_command_speed_unchanged(home):
    """The redaction and escaping passes cost nothing visible: list of 300 definitions well under a second."""
    for index in range(300):
        write_definition(home, f"m{index:03d}", definition(name=f"Model {index}"))
    start = time.perf_counter()
    result = wangp("list", home=home)
    assert result.exit_code == 0
    assert time.perf_counter() - start < 3.0


def test_check_folder_writable_refuses_a_read_only_file_system(tmpfs):
    folder = tmpfs("1m")
    (folder / "outputs").mkdir()
    tmpfs.read_only(folder)
    with pytest.raises(outputs.OutputError, match="read-only file system"):
        outputs.check_folder_writable(folder / "outputs")
    with pytest.raises(outputs.OutputError, match="read-only file system"):
        outputs.check_output_file(folder / "report.txt", kind="report")


def test_write_on_a_full_disk_is_one_clean_error_and_leaves_nothing(tmpfs):
    folder = tmpfs("1m")
    with pytest.raises(WangpError, match="no space left|No space left"):
        jsonio.atomic_write_text(folder / "big.json", "x" * (2 << 20))
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", [["show", "secret"], ["show", "secret", "-f", "json"], ["list"],
                                     ["list", "-f", "json"], ["validate"], ["validate", "-f", "json"],
                                     ["validate", "-f", "github"], ["download", "secret", "--dry-run"]])
def test_url_credentials_never_printed(home, command):
    """Row 16: a password in a URL and a token in its query, through every command that prints URLs."""
    write_definition(home, "secret", definition(URLs=[
        "https://user:secretpass@127.0.0.1:9/auth/x_bf16.safetensors",
        "https://huggingface.co/me/r/resolve/main/x_quanto_bf16_int8.safetensors?token=hf_SECRETTOKEN99"]))
    result = wangp(*command, home=home, env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code in (0, 1), result.output
    assert "secretpass" not in result.output and "SECRETTOKEN" not in result.output


def test_validate_qq_prints_errors_only(home):
    write_definition(home, "bad", "{bad")
    write_definition(home, "warned", definition(URLs=["https://huggingface.co/me/r/blob/main/x_bf16.safetensors"]))
    loud = wangp("validate", home=home)
    assert " W" in loud.stdout and "Found" in loud.stdout
    quiet = wangp("-qq", "validate", home=home)
    assert quiet.exit_code == 1
    assert [line.split(" ")[1] for line in quiet.stdout.splitlines() if not line.startswith(" ")] == ["E1"]


@pytest.mark.parametrize("target, message", [("folder", "is not a regular file"),
                                             ("/dev/zero", "is not a regular file"),
                                             ("missing.safetensors", "does not exist")])
def test_inspect_names_what_the_path_is(tmp_path, target, message):
    """Row 45: a folder or a device is said to be one (never read: /dev/zero would never end)."""
    (tmp_path / "folder").mkdir()
    path = target if target.startswith("/") else tmp_path / target
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "inspect", str(path)], capture_output=True,
                            text=True, env=subprocess_env(), timeout=30)
    assert result.returncode == 1
    assert message in result.stderr
