"""The one rule for names that reach a file path or a generated source (docs/security.md).

An IR, a board file or a checkpoint may come from someone else; their names end up in Verilog
module names, C++ identifiers, Tcl ``set`` lines and file names. Two shapes of the same rule:

* an *identifier* (layer names): a letter, then letters, digits or ``_``, at most
  :data:`MAX_NAME` characters, and not a Verilog, C++ or Tcl keyword;
* a *label* (model, board and run names): a letter or digit, then letters, digits, ``_``, ``-``
  or ``.``, at most :data:`MAX_NAME` characters (so ``pynq-z2`` and ``run-2.1`` are fine).

Neither can hold a path separator, a space, a quote, a newline or a leading dot, so no name can
climb out of a directory or end a line of generated code. File names derived from them (a layer's
Verilog modules) keep a label's characters and may run to :data:`MAX_FILE_NAME` characters.
"""
from __future__ import annotations

import re
from typing import Any

from msq.errors import MSQError

MAX_NAME = 64
MAX_FILE_NAME = 255
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_VERILOG = """always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
endprimitive endspecify endtable endtask event for force forever fork function generate genvar highz0
highz1 if ifnone incdir include initial inout input instance integer join large liblist library
localparam macromodule medium module nand negedge nmos nor noshowcancelled not notif0 notif1 or output
parameter pmos posedge primitive pull0 pull1 pulldown pullup pulsestyle_onevent pulsestyle_ondetect
rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled
signed small specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1
tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor
xnor xor logic bit byte int shortint longint struct union enum typedef class interface package
import export const static virtual void string"""
_CPP = """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export extern
false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr
operator or or_eq private protected public register reinterpret_cast requires return short signed
sizeof static static_assert static_cast struct switch template this thread_local throw true try
typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq"""
_TCL = """after append array break catch cd close concat continue error eval exec exit expr file for
foreach format gets glob global if incr info join lappend lindex list llength load lrange lsearch
namespace open proc puts pwd rename return set socket source split string subst switch unset
uplevel upvar variable vwait while"""
KEYWORDS = frozenset((_VERILOG + " " + _CPP + " " + _TCL).split())


def _fail(value: Any, where: str, rule: str, limit: int = MAX_NAME) -> MSQError:
    return MSQError(f"{where}: {value!r} is not a valid name: expected {rule}, at most {limit} characters "
                    "(see docs/security.md)")


def check_identifier(value: Any, where: str) -> str:
    """``value`` if it is a valid identifier (a layer name), else an MSQError naming ``where``."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _IDENTIFIER.fullmatch(value):
        raise _fail(value, where, "a letter, then letters, digits or '_'")
    if value in KEYWORDS:
        raise MSQError(f"{where}: {value!r} is a Verilog, C++ or Tcl keyword and cannot name a layer")
    return value


def check_label(value: Any, where: str) -> str:
    """``value`` if it is a valid label (a model, board or run name), else an MSQError naming ``where``."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _LABEL.fullmatch(value):
        raise _fail(value, where, "a letter or digit, then letters, digits, '_', '-' or '.'")
    return value


def check_file_name(value: str, where: str) -> str:
    """A generated file's name (derived from labels and identifiers, so it may be longer than
    :data:`MAX_NAME`) with the characters of a label only: safe in Tcl and shell scripts."""
    if len(value) > MAX_FILE_NAME or not _LABEL.fullmatch(value):
        raise _fail(value, where, "a letter or digit, then letters, digits, '_', '-' or '.'", MAX_FILE_NAME)
    return value


def comment_text(text: str) -> str:
    """Free text (a path, a provenance note) made safe for one line of a generated comment: control
    and non-ASCII characters are escaped, so nothing can end the comment's line."""
    return text.encode("unicode_escape").decode("ascii")
