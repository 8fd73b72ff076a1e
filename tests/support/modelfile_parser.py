"""How Ollama reads a Modelfile, re-implemented from its documented parser behaviour, so tests
can check that what web4tui writes is read back as exactly the intended instructions.

Rules (Ollama's parser/parser.go): a line starts with an instruction name; its value runs
until a line break at which the value, trimmed, is complete — unquoted, or closed by the same
quotes it opened with (``"`` or ``\"\"\"``). There are no escapes. Characters that are not
printable (other than spaces, tabs and line breaks inside a value) are dropped.
"""

from __future__ import annotations


def _unquote(s: str) -> tuple[str, bool]:
    if s.startswith('"""'):
        if len(s) >= 6 and s.endswith('"""'):
            return s[3:-3], True
        return "", False
    if s.startswith('"'):
        if len(s) >= 2 and s.endswith('"'):
            return s[1:-1], True
        return "", False
    return s, True


def parse(text: str) -> list[tuple[str, str]]:
    """[(instruction, value)], PARAMETER values as ("parameter:<name>", value)."""
    commands: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] == "#":
            while i < n and text[i] not in "\r\n":
                i += 1
            continue
        j = i
        while j < n and text[j].isalpha():
            j += 1
        name = text[i:j].lower()
        if name not in {"from", "template", "system", "parameter", "adapter", "license",
                        "message", "requires", "renderer", "parser", "draft"}:
            raise ValueError(f"invalid command {text[i:j + 10]!r}")
        if j >= n or text[j] not in " \t":
            raise ValueError("expected a space after the command")
        i = j + 1
        if name == "parameter":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            name = "parameter:" + text[i:j]
            i = j + 1
        buf = []
        while True:
            if i >= n:
                value, ok = _unquote("".join(buf).strip())
                if not ok:
                    raise ValueError("unexpected end of file inside a value")
                commands.append((name, value))
                break
            ch = text[i]
            i += 1
            if ch in "\r\n":
                value, ok = _unquote("".join(buf).strip())
                if ok:
                    commands.append((name, value))
                    break
                buf.append(ch)
            elif ch in " \t" or ch.isprintable():
                buf.append(ch)
    return commands
