#!/usr/bin/env python3
"""The shape of the code under src/: files and lines per folder, and the longest
functions. Issue 12 asks for these before and after a restructuring; rerun with

    python3 benches/code_shape.py            # the working tree
    python3 benches/code_shape.py 022099c    # a commit, read with git show

Lines are all lines of a file (comments and tests included). A function is `fn name`
up to its matching closing brace; its length counts from the `fn` line to the brace.
Strings, chars and comments are skipped when matching braces.
"""

import collections
import re
import subprocess
import sys

FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def files_at(commit):
    if commit is None:
        out = subprocess.run(
            ["git", "ls-files", "src"], capture_output=True, text=True, check=True
        ).stdout
        for path in sorted(out.split()):
            if path.endswith(".rs"):
                with open(path, encoding="utf-8") as f:
                    yield path, f.read()
        return
    out = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", commit, "src"],
        capture_output=True, text=True, check=True,
    ).stdout
    for path in sorted(out.split()):
        if path.endswith(".rs"):
            text = subprocess.run(
                ["git", "show", f"{commit}:{path}"],
                capture_output=True, text=True, check=True,
            ).stdout
            yield path, text


def code_only(text):
    """`text` with comments, strings and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        elif c == "'" and re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:]):
            m = re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path, text):
    code = code_only(text)
    for m in FN.finditer(code):
        start = m.end()
        brace = code.find("{", start)
        semi = code.find(";", start)
        if brace < 0 or (0 <= semi < brace):
            continue  # a declaration without a body
        depth, j = 0, brace
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, j) + 1
        yield last - first + 1, f"{path}:{first}", m.group(1)


def main():
    commit = sys.argv[1] if len(sys.argv) > 1 else None
    per_folder = collections.defaultdict(lambda: [0, 0])
    fns = []
    for path, text in files_at(commit):
        parts = path.split("/")
        folder = "/".join(parts[:2]) if len(parts) > 2 else "src (top-level files)"
        per_folder[folder][0] += 1
        per_folder[folder][1] += text.count("\n")
        fns.extend(functions(path, text))
    print(f"Code shape of {commit or 'the working tree'}\n")
    print("| folder | files | lines |")
    print("|---|---:|---:|")
    total_files = total_lines = 0
    for folder in sorted(per_folder):
        files, lines = per_folder[folder]
        total_files += files
        total_lines += lines
        print(f"| {folder} | {files} | {lines} |")
    print(f"| all | {total_files} | {total_lines} |\n")
    fns.sort(reverse=True)
    print("Longest functions (lines):\n")
    print("| lines | function | at |")
    print("|---:|---|---|")
    for length, at, name in fns[:15]:
        print(f"| {length} | {name} | {at} |")
    over = sum(1 for length, _, _ in fns if length > 80)
    print(f"\n{len(fns)} functions, {over} longer than 80 lines")


if __name__ == "__main__":
    main()
