#!/usr/bin/env python3
"""Compares tempest's per-test results on the real Glance and on glint cloud (scripts/tempest).

Reads the two CSV files subunit2csv wrote, prints one Markdown table row per test (Glance's
result, glint cloud's) and a count line, and exits 1 when glint cloud did not pass a test that
Glance passed: the contract is "everything Glance passes in this bed", not a fixed list.

An optional third file names known gaps, one test per line (`name  # why`): work not done yet,
listed so that CI still fails on any other test. It also fails when a listed test passes, so
the list only ever shrinks.
"""

import csv
import re
import sys

# A test's tempest id carries its uuid and tags in brackets: "...test_x[id-...,smoke]".
BRACKETS = re.compile(r"\[[^\]]*\]$")
WORDS = {"success": "pass", "fail": "FAIL", "failure": "FAIL", "skip": "skip"}


def results(path):
    found = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            name = BRACKETS.sub("", row["test"]).replace("tempest.api.image.v2.", "")
            found[name] = WORDS.get(row["status"], row["status"])
    return found


def known_gaps(path):
    gaps = set()
    with open(path) as file:
        for line in file:
            name = line.split("#", 1)[0].strip()
            if name:
                gaps.add(name)
    return gaps


# "setUpClass (tempest.api.image.v2.x.Class)" or "tempest.api.image.v2.x.Class.test_y[...]".
CLASS_OF = re.compile(r"^(?:\w+Class \()?(tempest\.api\.[\w.]+?\.[A-Z]\w*)")


def failing_classes(path):
    """A regex for the classes with a failed test or fixture, for one more run."""
    classes = set()
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            found = CLASS_OF.match(row["test"])
            if row["status"] in ("fail", "failure") and found:
                classes.add(re.escape(found.group(1)) + r"\b")
    return "|".join(sorted(classes))


def merge(first, retry):
    """Rewrites `first` with the rows of `retry` in place of the same tests (and fixtures)."""
    with open(retry, newline="") as file:
        again = list(csv.DictReader(file))
    classes = {found.group(1) for row in again if (found := CLASS_OF.match(row["test"]))}
    with open(first, newline="") as file:
        reader = csv.DictReader(file)
        fields = reader.fieldnames
        kept = [row for row in reader
                if not ((found := CLASS_OF.match(row["test"])) and found.group(1) in classes)]
    with open(first, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept + again)


def main():
    if sys.argv[1] == "--failing-classes":
        print(failing_classes(sys.argv[2]))
        return
    if sys.argv[1] == "--merge":
        merge(sys.argv[2], sys.argv[3])
        return
    glance, glint = results(sys.argv[1]), results(sys.argv[2])
    gaps = known_gaps(sys.argv[3]) if len(sys.argv) > 3 else set()
    print("| test | Glance | glint cloud |")
    print("|---|---|---|")
    regressions = []
    for name in sorted(set(glance) | set(glint)):
        ours, theirs = glint.get(name, "absent"), glance.get(name, "absent")
        print(f"| {name} | {theirs} | {ours} |")
        if theirs == "pass" and ours != "pass":
            regressions.append(name)

    def count(side):
        values = list(side.values())
        return ", ".join(f"{values.count(word)} {word}" for word in ("pass", "FAIL", "skip"))

    print(f"\nGlance: {count(glance)}; glint cloud: {count(glint)}")
    unexpected = [name for name in regressions if name not in gaps]
    closed = sorted(name for name in gaps if glint.get(name) == "pass")
    if regressions:
        print(f"glint cloud does not pass {len(regressions)} test(s) Glance passes"
              f" ({len(regressions) - len(unexpected)} of them known gaps):")
        for name in regressions:
            print(f"  {name}{'' if name in unexpected else '  (known gap)'}")
    else:
        print("glint cloud passes every test Glance passes")
    if closed:
        print("known gaps that glint cloud now passes (remove them from the list):")
        for name in closed:
            print(f"  {name}")
    if unexpected or closed:
        sys.exit(1)


if __name__ == "__main__":
    main()
