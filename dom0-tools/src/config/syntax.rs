//! xl's configuration file syntax (`libxlu_cfg_l.l` / `libxlu_cfg_y.y`), read into an
//! ordered list of settings.
//!
//! ```text
//! file    := { stmt }
//! stmt    := end | KEY ('=' | '+=') value end
//! end     := NEWLINE | ';' | EOF
//! value   := atom | '[' { NEWLINE } [ atom { ',' { NEWLINE } atom } [ ',' ] ] { NEWLINE } ']'
//! atom    := STRING | NUMBER
//! ```
//! `#` starts a comment that runs to the end of the line. Strings are in double or single
//! quotes, on one line, with C escapes (`\\ \" \' \n \t \r \a \b \f \v \xHH \OOO`), as xl's
//! dequoting does. Numbers are C integers: decimal, `0x` hex or `0` octal. `+=` appends to
//! a string or list given earlier. A key given twice keeps its last value, so command-line
//! overrides (parsed after the file) win.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::ConfigError;

/// One value of a list, or a whole scalar value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Atom {
    /// A quoted string, dequoted.
    Str(String),
    /// A number as written, with its value.
    Num {
        /// The digits as written (xl keeps them as a string).
        text: String,
        /// The value.
        value: u64,
    },
}

impl Atom {
    /// The atom as a string: a number reads as it was written, as in xl.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Str(s) => s,
            Self::Num { text, .. } => text,
        }
    }
}

/// The value of a setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string or number.
    Atom(Atom),
    /// A `[ ... ]` list.
    List(Vec<Atom>),
}

/// One `key = value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Line of the key (1-based).
    pub line: u32,
    /// Column of the value (1-based).
    pub column: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Key(String),
    Num(String),
    Str(String),
    Assign,
    Append,
    Open,
    Close,
    Comma,
    Semi,
    Newline,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(k) => write!(f, "'{k}'"),
            Self::Num(n) => write!(f, "'{n}'"),
            Self::Str(_) => write!(f, "a string"),
            Self::Assign => write!(f, "'='"),
            Self::Append => write!(f, "'+='"),
            Self::Open => write!(f, "'['"),
            Self::Close => write!(f, "']'"),
            Self::Comma => write!(f, "','"),
            Self::Semi => write!(f, "';'"),
            Self::Newline => write!(f, "end of line"),
            Self::Eof => write!(f, "end of file"),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: u32,
    column: u32,
}

/// Splits `text` into tokens; the first lexical error ends it.
struct Lexer<'a> {
    file: &'a str,
    chars: core::iter::Peekable<core::str::Chars<'a>>,
    line: u32,
    column: u32,
}

/// `c` as it should appear in an error message.
pub(crate) fn show_char(c: char) -> String {
    if c == ' ' || c.is_ascii_graphic() || (!c.is_control() && !c.is_ascii() && !c.is_whitespace())
    {
        alloc::format!("'{c}'")
    } else {
        alloc::format!("'\\x{:02x}'", u32::from(c))
    }
}

impl<'a> Lexer<'a> {
    fn new(file: &'a str, text: &'a str, line: u32) -> Self {
        Self {
            file,
            chars: text.chars().peekable(),
            line,
            column: 1,
        }
    }

    fn error(&self, line: u32, column: u32, message: String) -> ConfigError {
        ConfigError::at(self.file, line, column, message)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn word(&mut self, first: char, more: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        s.push(first);
        while let Some(&c) = self.chars.peek() {
            if !more(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    fn tokens(mut self) -> Result<Vec<Token>, ConfigError> {
        let mut out = Vec::new();
        loop {
            let (line, column) = (self.line, self.column);
            let Some(c) = self.bump() else {
                out.push(Token {
                    tok: Tok::Eof,
                    line,
                    column,
                });
                return Ok(out);
            };
            let tok = match c {
                ' ' | '\t' | '\r' => continue,
                '#' => {
                    while self.chars.peek().is_some_and(|&c| c != '\n') {
                        self.bump();
                    }
                    continue;
                }
                '\n' => Tok::Newline,
                '=' => Tok::Assign,
                '+' if self.chars.peek() == Some(&'=') => {
                    self.bump();
                    Tok::Append
                }
                '[' => Tok::Open,
                ']' => Tok::Close,
                ',' => Tok::Comma,
                ';' => Tok::Semi,
                '"' | '\'' => Tok::Str(self.string(c, line, column)?),
                c if c.is_ascii_alphabetic() || c == '_' => {
                    Tok::Key(self.word(c, |c| c.is_ascii_alphanumeric() || c == '_'))
                }
                c if c.is_ascii_digit() => {
                    Tok::Num(self.word(c, |c| c.is_ascii_alphanumeric() || c == '_'))
                }
                c => {
                    return Err(self.error(
                        line,
                        column,
                        alloc::format!("unexpected character {}", show_char(c)),
                    ));
                }
            };
            out.push(Token { tok, line, column });
        }
    }

    /// A quoted string after its opening `quote`.
    fn string(&mut self, quote: char, line: u32, column: u32) -> Result<String, ConfigError> {
        let mut s = String::new();
        loop {
            let (eline, ecol) = (self.line, self.column);
            match self.bump() {
                None | Some('\n') => {
                    return Err(self.error(line, column, "unterminated string".to_string()));
                }
                Some(c) if c == quote => return Ok(s),
                Some('\\') => s.push(self.escape(eline, ecol)?),
                Some(c) => s.push(c),
            }
        }
    }

    /// The character an escape sequence stands for, after its backslash.
    fn escape(&mut self, line: u32, column: u32) -> Result<char, ConfigError> {
        let c = self.bump();
        let simple = match c {
            Some(c @ ('\\' | '"' | '\'')) => Some(c),
            Some('n') => Some('\n'),
            Some('t') => Some('\t'),
            Some('r') => Some('\r'),
            Some('a') => Some('\x07'),
            Some('b') => Some('\x08'),
            Some('f') => Some('\x0c'),
            Some('v') => Some('\x0b'),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let (radix, mut value, max_digits) = match c {
            Some('x') => (16, 0, 2),
            Some(d @ '0'..='7') => (8, d.to_digit(8).unwrap_or(0), 2),
            _ => {
                let shown = c.map_or_else(|| "end of line".to_string(), show_char);
                return Err(self.error(
                    line,
                    column,
                    alloc::format!("invalid escape sequence: backslash followed by {shown}"),
                ));
            }
        };
        let mut digits = 0;
        while digits < max_digits {
            let Some(d) = self.chars.peek().and_then(|c| c.to_digit(radix)) else {
                break;
            };
            value = value * radix + d;
            digits += 1;
            self.bump();
        }
        if radix == 16 && digits == 0 {
            return Err(self.error(line, column, "'\\x' needs hex digits".to_string()));
        }
        char::from_u32(value)
            .filter(|_| value <= 0xff)
            .ok_or_else(|| self.error(line, column, "escaped value is above 0xff".to_string()))
    }
}

/// The value of a C integer literal (`strtoul(s, 0, 0)` accepting the whole string).
pub fn parse_number(text: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Reads tokens into settings.
struct Parser<'a> {
    file: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof, and `pos` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn error(&self, t: &Token, message: String) -> ConfigError {
        ConfigError::at(self.file, t.line, t.column, message)
    }

    fn skip_newlines(&mut self) {
        while self.peek().tok == Tok::Newline {
            self.pos += 1;
        }
    }

    fn atom(&self, t: &Token) -> Option<Result<Atom, ConfigError>> {
        match &t.tok {
            Tok::Str(s) => Some(Ok(Atom::Str(s.clone()))),
            Tok::Num(n) => Some(match parse_number(n) {
                Some(value) => Ok(Atom::Num {
                    text: n.clone(),
                    value,
                }),
                None => Err(self.error(t, alloc::format!("invalid number '{n}'"))),
            }),
            _ => None,
        }
    }

    fn list(&mut self, key: &str) -> Result<Vec<Atom>, ConfigError> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            let t = self.next();
            if t.tok == Tok::Close {
                return Ok(items);
            }
            match self.atom(&t) {
                Some(atom) => items.push(atom?),
                None if t.tok == Tok::Open => {
                    return Err(self.error(&t, "lists cannot be nested".to_string()));
                }
                None if t.tok == Tok::Eof => {
                    return Err(self.error(&t, alloc::format!("unterminated list for '{key}'")));
                }
                None => {
                    return Err(self.error(
                        &t,
                        alloc::format!("expected a list item or ']' for '{key}', found {}", t.tok),
                    ));
                }
            }
            self.skip_newlines();
            let t = self.next();
            match &t.tok {
                Tok::Comma => {}
                Tok::Close => return Ok(items),
                Tok::Eof => {
                    return Err(self.error(&t, alloc::format!("unterminated list for '{key}'")));
                }
                other => {
                    return Err(self.error(
                        &t,
                        alloc::format!(
                            "expected ',' or ']' in the list for '{key}', found {other}"
                        ),
                    ));
                }
            }
        }
    }

    fn settings(mut self, out: &mut Vec<Setting>) -> Result<(), ConfigError> {
        loop {
            let t = self.next();
            let key = match t.tok {
                Tok::Eof => return Ok(()),
                Tok::Newline | Tok::Semi => continue,
                Tok::Key(ref k) => k.clone(),
                ref other => {
                    return Err(
                        self.error(&t, alloc::format!("expected a setting name, found {other}"))
                    );
                }
            };
            let op = self.next();
            let append = match op.tok {
                Tok::Assign => false,
                Tok::Append => true,
                _ => return Err(self.error(&op, alloc::format!("expected '=' after '{key}'"))),
            };
            let v = self.next();
            let value = match self.atom(&v) {
                Some(atom) => Value::Atom(atom?),
                None if v.tok == Tok::Open => Value::List(self.list(&key)?),
                None => {
                    return Err(self.error(
                        &v,
                        alloc::format!("expected a value after '{key} =', found {}", v.tok),
                    ));
                }
            };
            let end = self.next();
            if !matches!(end.tok, Tok::Newline | Tok::Semi | Tok::Eof) {
                return Err(self.error(
                    &end,
                    alloc::format!(
                        "expected end of line after the value of '{key}', found {}",
                        end.tok
                    ),
                ));
            }
            let mut setting = Setting {
                key,
                value,
                line: t.line,
                column: v.column,
            };
            let old = out.iter().rev().find(|s| append && s.key == setting.key);
            if let Some(old) = old {
                setting.value = appended(&old.value, setting.value).ok_or_else(|| {
                    self.error(
                        &v,
                        alloc::format!("cannot append this value to '{}'", setting.key),
                    )
                })?;
            }
            out.push(setting);
        }
    }
}

/// `old += new`: strings concatenate, lists extend.
fn appended(old: &Value, new: Value) -> Option<Value> {
    match (old, new) {
        (Value::Atom(Atom::Str(a)), Value::Atom(Atom::Str(b))) => {
            Some(Value::Atom(Atom::Str(alloc::format!("{a}{b}"))))
        }
        (Value::List(a), Value::List(b)) => {
            let mut items = a.clone();
            items.extend(b);
            Some(Value::List(items))
        }
        _ => None,
    }
}

/// Parses a whole file (or one override line, with `first_line` its number) and adds its
/// settings to `out`, where a `+=` finds what it appends to.
pub fn parse_settings(
    file: &str,
    text: &str,
    first_line: u32,
    out: &mut Vec<Setting>,
) -> Result<(), ConfigError> {
    let tokens = Lexer::new(file, text, first_line).tokens()?;
    Parser {
        file,
        tokens,
        pos: 0,
    }
    .settings(out)
}
