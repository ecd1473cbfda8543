#!/usr/bin/env python3
"""Measures how busy each test keeps the machine: CPU time over wall time, per test.

    scripts/test-cpu.py [NEXTEST ARGS...]     e.g. scripts/test-cpu.py -E 'binary(replication)'

Runs `cargo nextest run` (one test at a time, so that tests do not slow each other) with
this script as cargo's target runner, which times each test process and its children
(brokers, etcd, clients) with wait4's resource usage. Prints the tests that kept more than
half a core busy, busiest first. The weights in .config/nextest.toml come from this: over
1.2 cores a test runs alone, about one core takes two of the four slots.
"""
import os
import subprocess
import sys
import tempfile
import time

RUNNER_DIR = "SHALE_TEST_CPU_DIR"


def run_one(argv):
    """As cargo's runner: runs the test binary, records its name, wall and CPU seconds."""
    if "--list" in argv:
        os.execvp(argv[0], argv)
    start = time.monotonic()
    child = subprocess.Popen(argv)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    cpu = usage.ru_utime + usage.ru_stime
    # nextest runs `BINARY --exact NAME --nocapture`.
    name = next((a for a in argv[1:] if not a.startswith("-")), "?")
    binary = os.path.basename(argv[0]).rsplit("-", 1)[0]
    with open(os.path.join(os.environ[RUNNER_DIR], f"{os.getpid()}.txt"), "w") as f:
        f.write(f"{wall}\t{cpu}\t{binary}\t{name}\n")
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


def main(args):
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, **{
            RUNNER_DIR: out,
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER": f"{sys.executable} {__file__} --run",
        })
        cmd = ["cargo", "nextest", "run", "--workspace", "--lib", "--bins", "--tests",
               "--test-threads", "1", *args]
        status = subprocess.call(cmd, env=env)
        rows = []
        for entry in os.listdir(out):
            with open(os.path.join(out, entry)) as f:
                wall, cpu, binary, name = f.read().rstrip("\n").split("\t")
                rows.append((float(cpu) / max(float(wall), 1e-3), float(wall), binary, name))
    rows.sort(reverse=True)
    print(f"{len(rows)} tests timed; those keeping more than half a core busy:")
    print("cores busy   wall s  test")
    for cores, wall, binary, name in rows:
        if cores > 0.5:
            print(f"  {cores:8.2f} {wall:8.1f}  {binary} {name}")
    return status


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run_one(sys.argv[2:])
    sys.exit(main(sys.argv[1:]))
