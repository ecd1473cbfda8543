#!/usr/bin/env python3
"""Prints the slowest tests of a nextest run from its JUnit report, and how many failed.

    scripts/slowest-tests.py [JUNIT_XML] [N]

JUNIT_XML defaults to target/nextest/default/junit.xml (written by every `scripts/test.sh`
run, see .config/nextest.toml); N, the number of tests listed, to 15.
"""
import sys
import xml.etree.ElementTree as ET

path = sys.argv[1] if len(sys.argv) > 1 else "target/nextest/default/junit.xml"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 15
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError) as e:
    sys.exit(f"no test report to read at {path}: {e}")
tests = []
for suite in root.iter("testsuite"):
    for case in suite.iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        tests.append((float(case.get("time", "0")), suite.get("name"), case.get("name"), failed))
tests.sort(reverse=True)
total = sum(t[0] for t in tests)
print(f"slowest {min(count, len(tests))} of {len(tests)} tests "
      f"({total:.0f} s of test time in {float(root.get('time', '0')):.0f} s):")
for seconds, binary, name, failed in tests[:count]:
    print(f"  {seconds:7.1f} s  {binary} {name}{'  FAILED' if failed else ''}")
