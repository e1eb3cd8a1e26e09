"""Go's fmt (Sprint, Sprintln, Sprintf) and the strconv pieces it needs, over template values.

Owns: printing values exactly as Go's fmt does for the data templates hold (maps printed
`map[k:v]` in key order, slices `[a b]`, structs `{a b}`, nil `<nil>`, floats by %v's
shortest-%g rule), the printf verbs and flags (%v %+v %s %q %d %x %X %o %O %b %c %U %e %E %f %F
%g %G %t %T %%, width, precision, `*`, `[n]` argument indexes, `+ - # 0 space`), Go's
complaint texts (%!d(string=x), %!s(MISSING), %!(EXTRA ...), %!(NOVERB), ...), and
strconv.Quote.

Does not own: %#v (Go syntax), %p, or printing values that would show a memory address
(pointers inside collections, functions); those raise TemplateError.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

from ossy.template.errors import TemplateError
from ossy.template.values import Iface, NilPointer, Struct, element, kind, methods, type_name, unwrap

_LDIGITS = "0123456789abcdefx"
_UDIGITS = "0123456789ABCDEFX"


# ---------------------------------------------------------------------------------- strconv


def is_print(ch: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch.isprintable()


def _escape_rune(ch: str, quote: str, ascii_only: bool) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    if (ord(ch) < 0x80 or not ascii_only) and is_print(ch):
        return ch
    short = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\v": "\\v"}
    if ch in short:
        return short[ch]
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(s: str, *, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII)."""
    return '"' + "".join(_escape_rune(ch, '"', ascii_only) for ch in s) + '"'


def quote_rune(code: int, *, ascii_only: bool = False) -> str:
    """strconv.QuoteRune."""
    if not 0 <= code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return "'" + _escape_rune(chr(code), "'", ascii_only) + "'"


def _can_backquote(s: str) -> bool:
    return all(ch == "\t" or (ch != "`" and ch != "\ufeff" and is_print(ch)) for ch in s)


def _digits(value: float, prec: int, mode: str) -> tuple[str, int]:
    """Decimal digits (no leading or trailing zeros) of abs(value), and where the point goes.

    mode "shortest" gives the shortest digits that read back as value; "e" rounds to prec+1
    significant digits, "f" to prec digits after the point, "g" to prec significant digits.
    Python rounds exactly and half-to-even, as Go's strconv does.
    """
    value = abs(value)
    if value == 0:
        return "", 0
    if mode == "shortest":
        text = repr(value)
    elif mode == "f":
        text = format(value, f".{prec}f")
    else:
        significant = prec + 1 if mode == "e" else prec
        text = format(value, f".{significant - 1}e")
    _, digit_tuple, exponent = Decimal(text).as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent
    stripped = digits.lstrip("0")
    return stripped.rstrip("0"), point - (len(digits) - len(stripped))


def _fmt_e(neg: bool, digits: str, point: int, prec: int, letter: str) -> str:
    out = ["-" if neg else "", digits[0] if digits else "0"]
    if prec > 0:
        out.append("." + digits[1:prec + 1].ljust(prec, "0"))
    exp = point - 1 if digits else 0
    out.append(letter + ("-" if exp < 0 else "+") + f"{abs(exp):02d}")
    return "".join(out)


def _fmt_f(neg: bool, digits: str, point: int, prec: int) -> str:
    whole = (digits[:point].ljust(point, "0") if point > 0 else "0")
    out = ["-" if neg else "", whole]
    if prec > 0:
        frac = "".join(digits[point + i] if 0 <= point + i < len(digits) else "0"
                       for i in range(prec))
        out.append("." + frac)
    return "".join(out)


def _float_bits(value: float) -> tuple[bool, int, int]:
    """Sign, mantissa (with the implicit bit) and unbiased exponent, as strconv splits them."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp += 1
    else:
        mant |= 1 << 52
    return bool(bits >> 63), mant, exp - 1023


def _fmt_b(value: float) -> str:
    neg, mant, exp = _float_bits(value)
    exp -= 52
    return ("-" if neg else "") + f"{mant}p" + ("+" if exp >= 0 else "") + str(exp)


def _fmt_x(value: float, prec: int, verb: str) -> str:
    """strconv's %x for floats: -0x1.yyyyp±dd."""
    neg, mant, exp = _float_bits(value)
    if mant == 0:
        exp = 0
    mant <<= 8
    while mant != 0 and mant & (1 << 60) == 0:
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    digits = _UDIGITS if verb == "X" else _LDIGITS
    out = ["-" if neg else "", "0", verb, str((mant >> 60) & 1)]
    mant = (mant << 4) & ((1 << 64) - 1)
    if (prec < 0 and mant != 0) or prec > 0:
        out.append(".")
        count = 0
        while (mant != 0) if prec < 0 else count < prec:
            out.append(digits[(mant >> 60) & 15])
            mant = (mant << 4) & ((1 << 64) - 1)
            count += 1
    out.append("P" if verb == "X" else "p")
    out.append(("-" if exp < 0 else "+") + f"{abs(exp):02d}")
    return "".join(out)


def format_float(value: float, verb: str, prec: int) -> str:
    """strconv.FormatFloat(value, verb, prec, 64) for verbs b e E f g G x X."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if verb == "b":
        return _fmt_b(value)
    if verb in "xX":
        return _fmt_x(value, prec, verb)
    neg = value < 0 or (value == 0 and str(value).startswith("-"))
    shortest = prec < 0
    lower = verb.lower()
    if lower == "g" and prec == 0:
        prec = 1
    digits, point = _digits(value, prec, "shortest" if shortest else lower)
    if lower == "e":
        return _fmt_e(neg, digits, point, len(digits) - 1 if shortest else prec, "e" if verb == "e" else "E")
    if lower == "f":
        return _fmt_f(neg, digits, point, max(len(digits) - point, 0) if shortest else prec)
    eprec = 6 if shortest else prec
    if shortest:
        prec = len(digits)
    exp = point - 1
    if exp < -4 or exp >= eprec:
        return _fmt_e(neg, digits, point, min(prec, len(digits)) - 1, "e" if verb == "g" else "E")
    if prec > point:
        prec = len(digits)
    return _fmt_f(neg, digits, point, max(prec - point, 0))


# ------------------------------------------------------------------------------------- fmt


class _Printer:
    """Go's fmt.pp: one Sprint/Sprintf call."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.erroring = False
        self.clear_flags()

    def clear_flags(self) -> None:
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid = self.prec = 0

    def text(self) -> str:
        return "".join(self.buf)

    # -- padding ------------------------------------------------------------------------

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero and not self.minus else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
        elif not self.minus:
            self.write_padding(self.wid - len(s))
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(self.wid - len(s))

    # -- basic formats ------------------------------------------------------------------

    def fmt_boolean(self, v: bool) -> None:
        self.pad("true" if v else "false")

    def fmt_integer(self, u: int, base: int, verb: str, digits: str) -> None:
        negative = u < 0
        u = abs(u)
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                old, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = old
                return
        elif self.zero and not self.minus and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1
        if base == 10:
            body = str(u)
        else:
            body = ""
            while True:
                body = digits[u % base] + body
                u //= base
                if u == 0:
                    break
        body = body.rjust(prec, "0")
        if self.sharp:
            if base == 2:
                body = "0b" + body
            elif base == 8 and body[0] != "0":
                body = "0" + body
            elif base == 16:
                body = "0" + digits[16] + body
        if verb == "O":
            body = "0o" + body
        if negative:
            body = "-" + body
        elif self.plus:
            body = "+" + body
        elif self.space:
            body = " " + body
        old, self.zero = self.zero, False
        self.pad(body)
        self.zero = old

    def truncate(self, s: str) -> str:
        return s[:self.prec] if self.prec_present else s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_sx(self, s: str, digits: str) -> None:
        data = s.encode("utf-8", "surrogateescape")
        length = min(len(data), self.prec) if self.prec_present else len(data)
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        out = []
        if self.sharp:
            out.append("0" + digits[16])
        for i, byte in enumerate(data[:length]):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append("0" + digits[16])
            out.append(digits[byte >> 4] + digits[byte & 0xF])
        self.buf.append("".join(out))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and _can_backquote(s):
            self.pad("`" + s + "`")
        else:
            self.pad(quote(s, ascii_only=self.plus))

    def fmt_c(self, code: int) -> None:
        self.pad(chr(code if 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else 0xFFFD))

    def fmt_unicode(self, code: int) -> None:
        prec = self.prec if self.prec_present and self.prec > 4 else 4
        text = "U+" + format(code & (1 << 64) - 1, "X").rjust(prec, "0")
        if self.sharp and code <= 0x10FFFF and is_print(chr(code)):
            text += " '" + chr(code) + "'"
        old, self.zero = self.zero, False
        self.pad(text)
        self.zero = old

    def fmt_float_text(self, value: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = format_float(value, verb, prec)
        num = num if num[0] in "+-" else "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            old, self.zero = self.zero, False
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad(num)
            self.zero = old
            return
        if self.sharp:
            num = _sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            if self.zero and not self.minus and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    # -- typed dispatch -----------------------------------------------------------------

    def bad_verb(self, arg: Any, verb: str, *, nil: bool = False) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if nil:
            self.buf.append("<nil>")
        else:
            self.buf.append(type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.buf.append(")")
        self.erroring = False

    def fmt_bool(self, arg: bool, verb: str) -> None:
        if verb in "tv":
            self.fmt_boolean(arg)
        else:
            self.bad_verb(arg, verb)

    def fmt_int(self, arg: int, verb: str) -> None:
        bases = {"v": 10, "d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}
        if verb in bases:
            self.fmt_integer(int(arg), bases[verb], verb, _UDIGITS if verb == "X" else _LDIGITS)
        elif verb == "c":
            self.fmt_c(int(arg))
        elif verb == "q":
            self.pad(quote_rune(int(arg), ascii_only=self.plus))
        elif verb == "U":
            self.fmt_unicode(int(arg))
        else:
            self.bad_verb(arg, verb)

    def fmt_float(self, arg: float, verb: str) -> None:
        if verb == "v":
            self.fmt_float_text(arg, "g", -1)
        elif verb in "gGbxX":
            self.fmt_float_text(arg, verb, -1)
        elif verb in "feE":
            self.fmt_float_text(arg, verb, 6)
        elif verb == "F":
            self.fmt_float_text(arg, "f", 6)
        else:
            self.bad_verb(arg, verb)

    def fmt_complex(self, arg: complex, verb: str) -> None:
        if verb not in "vbgGxXfFeE":
            self.bad_verb(arg, verb)
            return
        old = self.plus
        self.buf.append("(")
        self.fmt_float(arg.real, verb)
        self.plus = True
        self.fmt_float(arg.imag, verb)
        self.buf.append("i)")
        self.plus = old

    def fmt_string(self, arg: str, verb: str) -> None:
        if verb == "v":
            self.fmt_q(arg) if self.sharp_v else self.fmt_s(arg)
        elif verb == "s":
            self.fmt_s(arg)
        elif verb in "xX":
            self.fmt_sx(arg, _LDIGITS if verb == "x" else _UDIGITS)
        elif verb == "q":
            self.fmt_q(arg)
        else:
            self.bad_verb(arg, verb)

    def handle_methods(self, arg: Any, verb: str) -> bool:
        if self.erroring or self.sharp_v or verb not in "vsxXq":
            return False
        stringer = methods(arg).get("String")
        if stringer is None:
            return False
        self.fmt_string(stringer(arg), verb)
        return True

    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is None:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(arg, verb, nil=True)
            return
        if verb == "T":
            self.fmt_s(type_name(arg))
            return
        if verb == "p":
            raise TemplateError("ossy.template does not support printf %p")
        self.print_value(arg, verb, 0)

    def print_value(self, value: Any, verb: str, depth: int) -> None:
        if isinstance(value, Iface):
            if value.value is None:
                self.buf.append("<nil>")
            else:
                self.print_value(value.value, verb, depth + 1)
            return
        if self.handle_methods(value, verb):
            return
        k = kind(value)
        if k == "bool":
            self.fmt_bool(value, verb)
        elif k in ("int", "uint"):
            self.fmt_int(value, verb)
        elif k == "float":
            self.fmt_float(value, verb)
        elif k == "complex":
            self.fmt_complex(value, verb)
        elif k == "string":
            self.fmt_string(value, verb)
        elif k == "map":
            self.print_map(value, verb, depth)
        elif k == "slice":
            self.print_slice(value, verb, depth)
        elif k == "struct" or (k == "ptr" and isinstance(value, Struct) and depth == 0):
            self.print_struct(value, verb, depth)
        elif isinstance(value, NilPointer):
            self.fmt_nil_pointer(value, verb)
        elif k == "interface":
            self.buf.append("<nil>")
        else:
            raise TemplateError(f"printing a {type_name(value)} shows a memory address; "
                               "ossy.template does not support it")

    def print_map(self, value: dict, verb: str, depth: int) -> None:
        self.buf.append("map[")
        for i, key in enumerate(sorted(value)):
            if i:
                self.buf.append(" ")
            self.print_value(key, verb, depth + 1)
            self.buf.append(":")
            self.print_value(element(value, value[key]), verb, depth + 1)
        self.buf.append("]")

    def print_slice(self, value: list, verb: str, depth: int) -> None:
        self.buf.append("[")
        for i, item in enumerate(value):
            if i:
                self.buf.append(" ")
            self.print_value(element(value, item), verb, depth + 1)
        self.buf.append("]")

    def print_struct(self, value: Struct, verb: str, depth: int) -> None:
        if value.opaque:
            raise TemplateError(f"printing a {value.go_type} shows a memory address; "
                               "ossy.template does not support it")
        if value.pointer:
            self.buf.append("&")
            depth += 1
        self.buf.append("{")
        for i, name in enumerate(value.fields):
            if i:
                self.buf.append(" ")
            if self.plus_v:
                self.buf.append(name + ":")
            field = value.fields[name]
            if name in value.iface_fields and field is None:
                self.buf.append("<nil>")
            else:
                self.print_value(field, verb, depth + 1)
        self.buf.append("}")

    def fmt_nil_pointer(self, value: NilPointer, verb: str) -> None:
        if verb == "v":
            self.pad("<nil>")
        elif verb in "bodxX":
            self.fmt_int(0, verb)
        else:
            self.bad_verb(value, verb)

    # -- entry points -------------------------------------------------------------------

    def do_print(self, args: list) -> None:
        prev_string = False
        for i, arg in enumerate(args):
            is_string = isinstance(arg, str)
            if i > 0 and not is_string and not prev_string:
                self.buf.append(" ")
            self.print_arg(arg, "v")
            prev_string = is_string

    def do_println(self, args: list) -> None:
        for i, arg in enumerate(args):
            if i > 0:
                self.buf.append(" ")
            self.print_arg(arg, "v")
        self.buf.append("\n")

    def do_printf(self, fmt: str, args: list) -> None:
        _Printf(self, fmt, args).run()


def _sharp_float(num: str, verb: str, prec: int) -> str:
    """The `#` flag on floats: keep the decimal point and, for %g, trailing zeros."""
    if verb == "b":
        return num
    digits = (6 if prec == -1 else prec) if verb in "vgGx" else 0
    has_point = saw_nonzero = False
    tail = ""
    for i, ch in enumerate(num[1:], start=1):
        if ch == ".":
            has_point = True
        elif ch in "pP" or (ch in "eE" and verb not in "xX"):
            num, tail = num[:i], num[i:]
            break
        else:
            saw_nonzero = saw_nonzero or ch != "0"
            digits -= saw_nonzero
    if not has_point:
        if len(num) == 2 and num[1] == "0":
            digits -= 1
        num += "."
    return num + "0" * max(digits, 0) + tail


class _Printf:
    """fmt's doPrintf: walks a format string, consuming arguments."""

    def __init__(self, p: _Printer, fmt: str, args: list):
        self.p, self.fmt, self.args = p, fmt, args
        self.arg_num = 0
        self.reordered = False
        self.good_arg_num = True

    def parse_num(self, i: int) -> tuple[int, bool, int]:
        num, start = 0, i
        while i < len(self.fmt) and self.fmt[i].isascii() and self.fmt[i].isdigit():
            if num > 1_000_000:
                return 0, False, len(self.fmt)
            num = num * 10 + int(self.fmt[i])
            i += 1
        return num, i > start, i

    def arg_number(self, i: int) -> tuple[int, bool]:
        """Parses an `[n]` index at i; returns the new position and whether one was found."""
        if i >= len(self.fmt) or self.fmt[i] != "[":
            return i, False
        self.reordered = True
        close = self.fmt.find("]", i + 1)
        if len(self.fmt) - i < 3 or close < 0:
            self.good_arg_num = False
            return i + 1, False
        num, ok, end = self.parse_num(i + 1)
        if not ok or end != close:
            self.good_arg_num = False
            return close + 1, False
        if 1 <= num <= len(self.args):
            self.arg_num = num - 1
            return close + 1, True
        self.good_arg_num = False
        return close + 1, True

    def int_arg(self) -> tuple[int, bool]:
        if self.arg_num >= len(self.args):
            return 0, False
        arg = self.args[self.arg_num]
        self.arg_num += 1
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) <= 1_000_000:
            return int(arg), True
        return 0, False

    def run(self) -> None:
        p, fmt, end = self.p, self.fmt, len(self.fmt)
        after_index = False
        i = 0
        while i < end:
            self.good_arg_num = True
            start = i
            while i < end and fmt[i] != "%":
                i += 1
            if i > start:
                p.buf.append(fmt[start:i])
            if i >= end:
                break
            i += 1
            p.clear_flags()
            simple = False
            while i < end:
                c = fmt[i]
                if c == "#":
                    p.sharp = True
                elif c == "0":
                    p.zero = True
                elif c == "+":
                    p.plus = True
                elif c == "-":
                    p.minus = True
                elif c == " ":
                    p.space = True
                else:
                    if "a" <= c <= "z" and self.arg_num < len(self.args):
                        if c == "v":
                            self.set_v_flags()
                        p.print_arg(self.args[self.arg_num], c)
                        self.arg_num += 1
                        i += 1
                        simple = True
                    break
                i += 1
            if simple:
                continue
            i, after_index = self.arg_number(i)
            if i < end and fmt[i] == "*":
                i += 1
                p.wid, p.wid_present = self.int_arg()
                if not p.wid_present:
                    p.buf.append("%!(BADWIDTH)")
                if p.wid < 0:
                    p.wid, p.minus, p.zero = -p.wid, True, False
                after_index = False
            else:
                p.wid, p.wid_present, i = self.parse_num(i)
                if after_index and p.wid_present:
                    self.good_arg_num = False
            if i + 1 < end and fmt[i] == ".":
                i += 1
                if after_index:
                    self.good_arg_num = False
                i, after_index = self.arg_number(i)
                if i < end and fmt[i] == "*":
                    i += 1
                    p.prec, p.prec_present = self.int_arg()
                    if p.prec < 0:
                        p.prec, p.prec_present = 0, False
                    if not p.prec_present:
                        p.buf.append("%!(BADPREC)")
                    after_index = False
                else:
                    p.prec, p.prec_present, i = self.parse_num(i)
                    if not p.prec_present:
                        p.prec, p.prec_present = 0, True
            if not after_index:
                i, after_index = self.arg_number(i)
            if i >= end:
                p.buf.append("%!(NOVERB)")
                break
            verb = fmt[i]
            i += 1
            if verb == "%":
                p.buf.append("%")
            elif not self.good_arg_num:
                p.buf.append("%!" + verb + "(BADINDEX)")
            elif self.arg_num >= len(self.args):
                p.buf.append("%!" + verb + "(MISSING)")
            else:
                if verb == "v":
                    self.set_v_flags()
                p.print_arg(self.args[self.arg_num], verb)
                self.arg_num += 1
        if not self.reordered and self.arg_num < len(self.args):
            p.clear_flags()
            p.buf.append("%!(EXTRA ")
            for n, arg in enumerate(self.args[self.arg_num:]):
                if n:
                    p.buf.append(", ")
                if arg is None:
                    p.buf.append("<nil>")
                else:
                    p.buf.append(type_name(arg) + "=")
                    p.print_arg(arg, "v")
            p.buf.append(")")

    def set_v_flags(self) -> None:
        p = self.p
        if p.sharp:
            raise TemplateError("ossy.template does not support printf %#v")
        p.plus_v, p.plus = p.plus, False


def sprint(args: list) -> str:
    p = _Printer()
    p.do_print([unwrap(a) for a in args])
    return p.text()


def sprintln(args: list) -> str:
    p = _Printer()
    p.do_println([unwrap(a) for a in args])
    return p.text()


def sprintf(fmt: str, args: list) -> str:
    p = _Printer()
    p.do_printf(fmt, [unwrap(a) for a in args])
    return p.text()


