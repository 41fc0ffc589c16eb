//! `meta` expressions: boolean and arithmetic over rule names, as SpamAssassin evaluates them.
//!
//! Parsed once into postfix steps (no trees, so evaluation is iterative and a hostile
//! expression cannot overflow the stack); rule names evaluate to 0 or 1; `&&` and `||`
//! return an operand's value like Perl; comparisons give 1 or 0; division by zero gives 0.

/// Deepest nesting of parentheses and unary operators accepted.
const MAX_DEPTH: usize = 100;

/// A binary operator, loosest-binding last in Perl's precedence table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    Add,
    Sub,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    /// Binding strength: higher binds tighter.
    fn precedence(self) -> u8 {
        match self {
            BinOp::Mul | BinOp::Div => 6,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => 4,
            BinOp::Eq | BinOp::Ne => 3,
            BinOp::And => 2,
            BinOp::Or => 1,
        }
    }

    fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |x: bool| if x { 1.0 } else { 0.0 };
        match self {
            BinOp::Mul => a * b,
            BinOp::Div if b == 0.0 => 0.0,
            BinOp::Div => a / b,
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Lt => truth(a < b),
            BinOp::Gt => truth(a > b),
            BinOp::Le => truth(a <= b),
            BinOp::Ge => truth(a >= b),
            BinOp::Eq => truth(a == b),
            BinOp::Ne => truth(a != b),
            BinOp::And => {
                if a != 0.0 {
                    b
                } else {
                    a
                }
            }
            BinOp::Or => {
                if a != 0.0 {
                    a
                } else {
                    b
                }
            }
        }
    }
}

/// One postfix step; `R` is a rule name while parsing and a rule index once resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step<R> {
    Num(f64),
    Rule(R),
    Not,
    Neg,
    Bin(BinOp),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Num(f64),
    Op(BinOp),
    Not,
    Minus,
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let two = b.get(i..i + 2).unwrap_or(&[]);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => (Token::Open, 1),
            b')' => (Token::Close, 1),
            b'*' => (Token::Op(BinOp::Mul), 1),
            b'/' => (Token::Op(BinOp::Div), 1),
            b'+' => (Token::Op(BinOp::Add), 1),
            b'-' => (Token::Minus, 1),
            _ if two == b"&&" => (Token::Op(BinOp::And), 2),
            _ if two == b"||" => (Token::Op(BinOp::Or), 2),
            _ if two == b"<=" => (Token::Op(BinOp::Le), 2),
            _ if two == b">=" => (Token::Op(BinOp::Ge), 2),
            _ if two == b"==" => (Token::Op(BinOp::Eq), 2),
            _ if two == b"!=" => (Token::Op(BinOp::Ne), 2),
            b'<' => (Token::Op(BinOp::Lt), 1),
            b'>' => (Token::Op(BinOp::Gt), 1),
            b'!' => (Token::Not, 1),
            c if c.is_ascii_digit() || c == b'.' => {
                let len = b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || **c == b'.')
                    .count();
                let text = &s[i..i + len];
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("bad number '{text}' in meta expression"))?;
                (Token::Num(n), len)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                (Token::Ident(s[i..i + len].to_string()), len)
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected '{ch}' in meta expression"));
            }
        };
        out.push(tok);
        i += len;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    out: Vec<Step<String>>,
}

/// Parses a meta expression into postfix steps over rule names.
pub(crate) fn parse(expr: &str) -> Result<Vec<Step<String>>, String> {
    let tokens = tokenize(expr)?;
    if tokens.is_empty() {
        return Err("empty meta expression".into());
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        out: Vec::new(),
    };
    p.binary(0, 0)?;
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(format!("unexpected {} in meta expression", describe(t)));
    }
    Ok(p.out)
}

fn describe(t: &Token) -> String {
    match t {
        Token::Ident(n) => format!("'{n}'"),
        Token::Num(n) => format!("'{n}'"),
        Token::Close => "')'".into(),
        Token::Open => "'('".into(),
        _ => "operator".into(),
    }
}

impl Parser {
    /// Precedence climbing: operands joined by operators binding tighter than `min`.
    fn binary(&mut self, min: u8, depth: usize) -> Result<(), String> {
        self.unary(depth)?;
        loop {
            let op = match self.tokens.get(self.pos) {
                Some(Token::Op(op)) => *op,
                Some(Token::Minus) => BinOp::Sub,
                _ => return Ok(()),
            };
            if op.precedence() <= min {
                return Ok(());
            }
            self.pos += 1;
            // Left associative: the right side only takes tighter operators.
            self.binary(op.precedence(), depth + 1)?;
            self.out.push(Step::Bin(op));
        }
    }

    fn unary(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("meta expression is nested too deeply".into());
        }
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Token::Not) => {
                self.unary(depth + 1)?;
                self.out.push(Step::Not);
            }
            Some(Token::Minus) => {
                self.unary(depth + 1)?;
                self.out.push(Step::Neg);
            }
            Some(Token::Num(n)) => self.out.push(Step::Num(n)),
            Some(Token::Ident(name)) => self.out.push(Step::Rule(name)),
            Some(Token::Open) => {
                self.binary(0, depth + 1)?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("missing ')' in meta expression".into());
                }
                self.pos += 1;
            }
            Some(t) => return Err(format!("unexpected {} in meta expression", describe(&t))),
            None => return Err("meta expression ends too early".into()),
        }
        Ok(())
    }
}

/// Evaluates resolved postfix steps; `value(i)` is rule `i`'s value (0 or 1). `stack` is
/// scratch space, reused across the metas of one document.
pub(crate) fn eval(
    steps: &[Step<usize>],
    value: impl Fn(usize) -> f64,
    stack: &mut Vec<f64>,
) -> f64 {
    stack.clear();
    for step in steps {
        let v = match *step {
            Step::Num(n) => n,
            Step::Rule(i) => value(i),
            Step::Not => {
                let a = stack.pop().unwrap_or(0.0);
                if a == 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Step::Neg => -stack.pop().unwrap_or(0.0),
            Step::Bin(op) => {
                let b = stack.pop().unwrap_or(0.0);
                let a = stack.pop().unwrap_or(0.0);
                op.apply(a, b)
            }
        };
        stack.push(v);
    }
    stack.pop().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and evaluates with A=1, B=0, C=1, D=0.
    fn run(expr: &str) -> Result<f64, String> {
        let steps = parse(expr)?;
        let names = ["A", "B", "C", "D"];
        let resolved: Vec<Step<usize>> = steps
            .into_iter()
            .map(|s| match s {
                Step::Rule(n) => Step::Rule(names.iter().position(|x| *x == n).unwrap_or(99)),
                Step::Num(n) => Step::Num(n),
                Step::Not => Step::Not,
                Step::Neg => Step::Neg,
                Step::Bin(op) => Step::Bin(op),
            })
            .collect();
        Ok(eval(
            &resolved,
            |i| if i % 2 == 0 && i < 4 { 1.0 } else { 0.0 },
            &mut Vec::new(),
        ))
    }

    #[test]
    fn a_reused_stack_starts_empty() {
        // `!A` on a stack left with values by an earlier meta must not read them.
        let steps = [Step::Rule(0), Step::Not, Step::Not];
        let mut stack = vec![5.0, 7.0];
        assert_eq!(eval(&steps, |_| 0.0, &mut stack), 0.0);
        assert_eq!(
            eval(&[Step::Bin(BinOp::Add)], |_| 1.0, &mut vec![2.0, 3.0]),
            0.0
        );
    }

    #[test]
    fn evaluation_table() {
        for (expr, want) in [
            ("A", 1.0),
            ("B", 0.0),
            ("A && C", 1.0),
            ("A && B", 0.0),
            ("B || C", 1.0),
            ("B || D", 0.0),
            ("!B", 1.0),
            ("!A", 0.0),
            ("!!A", 1.0),
            ("A && !B && C", 1.0),
            ("(A || B) && (C || D)", 1.0),
            ("(A || B) && (B || D)", 0.0),
            ("A || B && D", 1.0), // && binds tighter than ||
            ("(A + B + C) > 1", 1.0),
            ("(A + B + C) > 2", 0.0),
            ("A + B + C >= 2", 1.0),
            ("A + C == 2", 1.0),
            ("A + C != 2", 0.0),
            ("A + B < 1", 0.0),
            ("B + D <= 0", 1.0),
            ("2 * A + C", 3.0),
            ("1 + 2 * 3", 7.0),
            ("(1 + 2) * 3", 9.0),
            ("10 - 2 - 3", 5.0), // left associative
            ("8 / 2 / 2", 2.0),
            ("A / B", 0.0), // division by zero is 0, not a panic
            ("-A + 2", 1.0),
            ("0.5 * (A + C)", 1.0),
            ("A && 3", 3.0), // Perl: && yields its right operand
            ("B || 0.25", 0.25),
        ] {
            assert_eq!(run(expr), Ok(want), "{expr}");
        }
    }

    #[test]
    fn parse_errors_table() {
        for (expr, needle) in [
            ("", "empty"),
            ("A &&", "ends too early"),
            ("(A || B", "missing ')'"),
            ("A || B)", "unexpected ')'"),
            ("A B", "unexpected 'B'"),
            ("A & B", "unexpected '&'"),
            ("A || $x", "unexpected '$'"),
            ("1.2.3 > A", "bad number"),
            ("&& A", "unexpected operator"),
        ] {
            let err = run(expr).expect_err(expr);
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let expr = format!("{}A{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(run(&expr).unwrap_err().contains("nested too deeply"));
        let bangs = format!("{}A", "!".repeat(10_000));
        assert!(run(&bangs).unwrap_err().contains("nested too deeply"));
    }

    #[test]
    fn long_flat_chains_evaluate_iteratively() {
        let expr = vec!["A"; 5000].join(" + ");
        assert_eq!(run(&expr), Ok(5000.0));
    }
}
