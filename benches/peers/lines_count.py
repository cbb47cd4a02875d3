#!/usr/bin/env python3
"""Baseline: only split the file into lines (read 1 MiB chunks, count b"\\n").

The floor for any line-oriented tool: reading the bytes from the page cache and
finding the line ends, nothing else. Prints one JSON line: tool, records.
"""
import json
import sys


def main():
    path = sys.argv[1]
    n = 0
    last = b"\n"
    with open(path, "rb", buffering=0) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":  # final line without a newline
        n += 1
    sys.stdout.write(json.dumps({"tool": "lines", "records": n}) + "\n")


if __name__ == "__main__":
    main()
