"""A small YAML reader for CloudFormation templates (no PyYAML needed).

Covers what templates use: block mappings and sequences (also "- key: v"
compact items), plain/single/double-quoted scalars, block scalars (| |- |+
> >-), flow collections ([..] {..}, also across lines), comments, "---",
and CloudFormation's short tags (!Ref X, !GetAtt A.B, !Sub, !If [...],
!Condition X, ...) which become their long JSON forms.  Anchors, aliases,
multi-document streams and complex keys are not supported (YamlError).
"""
import json
import re


class YamlError(Exception):
    def __init__(self, message, line, col=1):
        super().__init__(f"{message} (line {line}, column {col})")
        self.line = line
        self.col = col


class _Line:
    __slots__ = ("indent", "text", "no")

    def __init__(self, indent, text, no):
        self.indent, self.text, self.no = indent, text, no


def _strip_comment(s):
    out, q, i = [], None, 0
    while i < len(s):
        c = s[i]
        if q:
            if c == q:
                if q == "'" and s[i + 1:i + 2] == "'":
                    out.append("''")
                    i += 2
                    continue
                q = None
            elif c == "\\" and q == '"':
                out.append(s[i:i + 2])
                i += 2
                continue
        elif c in "'\"" and (i == 0 or s[i - 1] in " \t[{,:-"):
            q = c
        elif c == "#" and (i == 0 or s[i - 1] in " \t"):
            break
        out.append(c)
        i += 1
    return "".join(out).rstrip()


def _tagged(tag, value, no):
    if tag in ("!!str",):
        return str(value)
    if tag.startswith("!!"):
        return value
    name = tag[1:]
    if name == "Ref":
        return {"Ref": value}
    if name == "Condition":
        return {"Condition": value}
    if name == "GetAtt" and isinstance(value, str):
        a, _, b = value.partition(".")
        return {"Fn::GetAtt": [a, b]}
    if not re.match(r"^[A-Za-z]+$", name):
        raise YamlError(f"unknown tag {tag}", no)
    return {"Fn::" + name: value}


_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _plain(s):
    if s in ("null", "Null", "NULL", "~", ""):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if _INT.match(s):
        return int(s)
    if _FLOAT.match(s) and any(c.isdigit() for c in s):
        return float(s)
    return s


def _dquote(s, no):
    try:
        return json.loads('"' + s.replace("\t", "\\t") + '"')
    except ValueError:
        out = s.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t")
        return out.replace("\\\\", "\\")


class _Flow:
    """Parser for one inline value: scalars, quoted strings, flow collections."""

    def __init__(self, s, no):
        self.s, self.i, self.no = s, 0, no

    def err(self, msg):
        raise YamlError(msg, self.no, self.i + 1)

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def value(self, flow):
        self.ws()
        s = self.s
        if self.i >= len(s):
            return None
        c = s[self.i]
        if c == "!":
            j = self.i
            while j < len(s) and s[j] not in " \t\n,]}":
                j += 1
            tag = s[self.i:j]
            self.i = j
            self.ws()
            if self.i >= len(s) or s[self.i] in ",]}":
                return _tagged(tag, "", self.no)
            return _tagged(tag, self.value(flow), self.no)
        if c in "&*":
            self.err("anchors and aliases are not supported")
        if c == "[":
            self.i += 1
            out = []
            while True:
                self.ws()
                if self.i >= len(s):
                    self.err("unterminated flow sequence")
                if s[self.i] == "]":
                    self.i += 1
                    return out
                out.append(self.value(True))
                self.ws()
                if self.i < len(s) and s[self.i] == ",":
                    self.i += 1
        if c == "{":
            self.i += 1
            out = {}
            while True:
                self.ws()
                if self.i >= len(s):
                    self.err("unterminated flow mapping")
                if s[self.i] == "}":
                    self.i += 1
                    return out
                key = self.value(True, ) if s[self.i] in "'\"" else self.key()
                self.ws()
                if self.i < len(s) and s[self.i] == ":":
                    self.i += 1
                    out[str(key)] = self.value(True)
                else:
                    out[str(key)] = None
                self.ws()
                if self.i < len(s) and s[self.i] == ",":
                    self.i += 1
        if c == "'":
            j = self.i + 1
            buf = []
            while True:
                if j >= len(s):
                    self.err("unterminated single-quoted string")
                if s[j] == "'":
                    if s[j + 1:j + 2] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(s[j])
                j += 1
            self.i = j + 1
            return re.sub(r"\s*\n\s*", " ", "".join(buf))
        if c == '"':
            j = self.i + 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            if j >= len(s):
                self.err("unterminated double-quoted string")
            raw = s[self.i + 1:j]
            self.i = j + 1
            return _dquote(re.sub(r"\s*\n\s*", " ", raw), self.no)
        j = self.i
        stop = ",]}" if flow else ""
        while j < len(s):
            if s[j] in stop:
                break
            if flow and s[j] == ":" and (j + 1 >= len(s) or s[j + 1] in " ,]}"):
                break
            j += 1
        text = s[self.i:j].strip()
        self.i = j
        return _plain(re.sub(r"\s*\n\s*", " ", text))

    def key(self):
        j = self.i
        while j < len(self.s) and self.s[j] not in ":,}":
            j += 1
        k = self.s[self.i:j].strip()
        self.i = j
        return k


def _balanced(text):
    depth, q, i = 0, None, 0
    while i < len(text):
        c = text[i]
        if q:
            if c == "\\" and q == '"':
                i += 1
            elif c == q:
                q = None
        elif c in "'\"":
            q = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return depth <= 0 and q is None


def _split_key(text):
    """'key: rest' -> (key, rest) or None when the line is not a mapping entry."""
    if text[:1] in "'\"":
        q = text[0]
        j = 1
        while j < len(text):
            if text[j] == q:
                if q == "'" and text[j + 1:j + 2] == "'":
                    j += 2
                    continue
                break
            j += 2 if (text[j] == "\\" and q == '"') else 1
        rest = text[j + 1:]
        if rest.startswith(":") and (len(rest) == 1 or rest[1] in " \t"):
            key = _Flow(text[:j + 1], 0).value(False)
            return str(key), rest[1:].strip()
        return None
    if text[:1] in "[{!&*|>%@`":
        return None
    m = re.match(r"^([^#:]*?(?::[^ \t][^#:]*?)*):(?:[ \t]+|$)", text)
    if not m:
        return None
    return m.group(1).strip(), text[m.end():].strip()


class _Parser:
    def __init__(self, text):
        self.raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.lines = []
        for no, raw in enumerate(self.raw, 1):
            if "\t" in raw[:len(raw) - len(raw.lstrip())]:
                raise YamlError("tabs are not allowed for indentation", no)
            stripped = _strip_comment(raw)
            if not stripped.strip() or stripped.strip() in ("---", "..."):
                self.lines.append(None)
                continue
            if stripped.startswith("%"):
                self.lines.append(None)
                continue
            ind = len(stripped) - len(stripped.lstrip(" "))
            self.lines.append(_Line(ind, stripped.strip(), no))

    def next(self, i):
        while i < len(self.lines) and self.lines[i] is None:
            i += 1
        return i

    def block(self, i, ind):
        i = self.next(i)
        if i >= len(self.lines):
            return None, i
        ln = self.lines[i]
        if ln.text == "-" or ln.text.startswith("- "):
            return self.seq(i, ln.indent)
        if _split_key(ln.text) is not None:
            return self.map(i, ln.indent)
        return self.inline(i, ln.text, ind)

    def inline(self, i, text, ind):
        """A value written after 'key:' or '- ' on line i (maybe continuing)."""
        no = self.lines[i].no
        if text.startswith("!") and " " not in text:
            tag = text
            j = self.next(i + 1)
            if j < len(self.lines) and (self.lines[j].indent > ind or (
                    self.lines[j].indent == ind and self.lines[j].text.startswith("-"))):
                v, j = self.block(j, self.lines[j].indent)
                return _tagged(tag, v, no), j
            return _tagged(tag, "", no), i + 1
        if re.match(r"^(![A-Za-z!]+\s+)?[|>][-+0-9]*$", text):
            tag = text.split()[0] if text.startswith("!") else None
            v, j = self.scalar_block(i, text.split()[-1], ind)
            return (_tagged(tag, v, no) if tag else v), j
        j = i + 1
        body = text
        if body.lstrip("!").split(" ", 1)[-1][:1] in "[{" or body[:1] in "[{":
            while not _balanced(body):
                j = self.next(j)
                if j >= len(self.lines):
                    raise YamlError("unterminated flow collection", no)
                body += "\n" + self.lines[j].text
                j += 1
        elif body[:1] not in "'\"":
            while True:  # folded plain scalar continuation lines
                k = self.next(j)
                if k < len(self.lines) and self.lines[k].indent > ind and \
                        _split_key(self.lines[k].text) is None and \
                        not self.lines[k].text.startswith("- "):
                    body += " " + self.lines[k].text
                    j = k + 1
                else:
                    break
        elif not _balanced(body):
            while not _balanced(body):
                j = self.next(j)
                if j >= len(self.lines):
                    raise YamlError("unterminated quoted string", no)
                body += "\n" + self.lines[j].text
                j += 1
        p = _Flow(body, no)
        v = p.value(False)
        p.ws()
        if p.i < len(body):
            raise YamlError(f"unexpected text {body[p.i:p.i + 20]!r}", no, p.i + 1)
        return v, j

    def scalar_block(self, i, head, ind):
        style, chomp = head[0], ""
        for c in head[1:]:
            if c in "+-":
                chomp = c
        raw_i = self.lines[i].no  # 1-based line number of the header
        k = raw_i
        block_lines = []
        block_ind = None
        while k < len(self.raw):
            raw = self.raw[k]
            if raw.strip() == "":
                block_lines.append("")
                k += 1
                continue
            cur = len(raw) - len(raw.lstrip(" "))
            if block_ind is None:
                if cur <= ind:
                    break
                block_ind = cur
            if cur < block_ind:
                break
            block_lines.append(raw[block_ind:])
            k += 1
        trailing = 0
        while block_lines and block_lines[-1] == "":
            block_lines.pop()
            trailing += 1
        if style == "|":
            text = "\n".join(block_lines)
        else:
            text, prev_blank = "", True
            for ln in block_lines:
                if ln == "":
                    text += "\n"
                    prev_blank = True
                elif ln.startswith(" "):
                    text += ("" if prev_blank else "\n") + ln
                    prev_blank = False
                else:
                    text += ("" if prev_blank else " ") + ln
                    prev_blank = False
        if chomp == "-":
            pass
        elif chomp == "+":
            text += "\n" * (trailing + 1) if block_lines else ""
        elif block_lines:
            text += "\n"
        # skip the consumed raw lines in the logical line list
        j = i + 1
        while j < len(self.lines) and (self.lines[j] is None or self.lines[j].no <= k):
            j += 1
        return text, j

    def map(self, i, ind):
        out = {}
        while True:
            i = self.next(i)
            if i >= len(self.lines):
                return out, i
            ln = self.lines[i]
            if ln.indent < ind:
                return out, i
            if ln.indent > ind:
                raise YamlError("bad indentation of a mapping entry", ln.no, ln.indent + 1)
            kv = _split_key(ln.text)
            if kv is None:
                if ln.text.startswith("-"):
                    return out, i
                raise YamlError("could not find expected ':'", ln.no, ln.indent + 1)
            key, rest = kv
            if key in out:
                raise YamlError(f"duplicate key {key!r}", ln.no, ln.indent + 1)
            if rest == "":
                j = self.next(i + 1)
                if j < len(self.lines) and (self.lines[j].indent > ind or (
                        self.lines[j].indent == ind and (self.lines[j].text == "-" or
                                                         self.lines[j].text.startswith("- ")))):
                    out[key], i = self.block(j, self.lines[j].indent)
                else:
                    out[key], i = None, i + 1
            else:
                out[key], i = self.inline(i, rest, ind)

    def seq(self, i, ind):
        out = []
        while True:
            i = self.next(i)
            if i >= len(self.lines):
                return out, i
            ln = self.lines[i]
            if ln.indent < ind or not (ln.text == "-" or ln.text.startswith("- ")):
                if ln.indent > ind:
                    raise YamlError("bad indentation of a sequence entry", ln.no, ln.indent + 1)
                return out, i
            if ln.indent > ind:
                raise YamlError("bad indentation of a sequence entry", ln.no, ln.indent + 1)
            rest = ln.text[1:].lstrip(" ")
            if rest == "":
                j = self.next(i + 1)
                if j < len(self.lines) and self.lines[j].indent > ind:
                    v, i = self.block(j, self.lines[j].indent)
                else:
                    v, i = None, i + 1
                out.append(v)
                continue
            off = ind + (len(ln.text) - len(rest))
            if rest == "-" or rest.startswith("- ") or _split_key(rest) is not None:
                self.lines[i] = _Line(off, rest, ln.no)
                v, i = self.block(i, off)
            else:
                v, i = self.inline(i, rest, ind)
            out.append(v)


def loads(text):
    p = _Parser(text)
    i = p.next(0)
    if i >= len(p.lines):
        return None
    v, i = p.block(i, p.lines[i].indent)
    i = p.next(i)
    if i < len(p.lines):
        ln = p.lines[i]
        raise YamlError("unexpected content", ln.no, ln.indent + 1)
    return v
