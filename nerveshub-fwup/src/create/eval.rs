//! `define-eval`: fwup's 64-bit integer expression evaluator (`eval_math.c`).
//!
//! A shunting-yard parser over `+ - * / ^`, unary minus, parentheses and the `dd`-style
//! suffixes `c w b kB K MB M GB G` (multipliers 1, 2, 512, 1000, 1024, 10⁶, 2²⁰, 10⁹, 2³⁰).
//! Numbers are read like `strtoll(…, 0)` (decimal, `0x` hex, leading-0 octal, saturating).
//! Arithmetic wraps on overflow (C leaves it undefined; fwup on two's-complement hardware
//! wraps). Both stacks hold at most 16 entries, as in fwup.

const STACK: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    LeftParen,
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Pow,
}

struct State {
    args: Vec<i64>,
    ops: Vec<(Op, u8)>,
}

type R<T = ()> = Result<T, ()>;

impl State {
    fn apply(&mut self, op: Op) -> R {
        if op == Op::Neg {
            let a = self.args.last_mut().ok_or(())?;
            *a = a.wrapping_neg();
            return Ok(());
        }
        if self.args.len() < 2 {
            return Err(());
        }
        let b = self.args.pop().ok_or(())?;
        let a = self.args.last_mut().ok_or(())?;
        *a = match op {
            Op::Add => a.wrapping_add(b),
            Op::Sub => a.wrapping_sub(b),
            Op::Mul => a.wrapping_mul(b),
            Op::Div => {
                if b == 0 {
                    return Err(());
                }
                a.wrapping_div(b)
            }
            Op::Pow => {
                if !(0..=63).contains(&b) {
                    return Err(());
                }
                (0..b).fold(1i64, |acc, _| acc.wrapping_mul(*a))
            }
            Op::Neg | Op::LeftParen => return Err(()),
        };
        Ok(())
    }

    fn pop_operator(&mut self) -> R {
        let (op, _) = self.ops.pop().ok_or(())?;
        if op == Op::LeftParen {
            return Err(());
        }
        self.apply(op)
    }

    fn right_paren(&mut self) -> R {
        loop {
            match self.ops.last() {
                None => return Err(()),
                Some((Op::LeftParen, _)) => {
                    self.ops.pop();
                    return Ok(());
                }
                Some(_) => self.pop_operator()?,
            }
        }
    }

    fn left_paren(&mut self) -> R {
        if self.ops.len() >= STACK {
            return Err(());
        }
        self.ops.push((Op::LeftParen, 1));
        Ok(())
    }

    fn push(&mut self, op: Op, right_assoc: bool, prec: u8) -> R {
        while let Some(&(_, top)) = self.ops.last() {
            if (!right_assoc && prec > top) || (right_assoc && prec >= top) {
                break;
            }
            self.pop_operator()?;
        }
        if self.ops.len() >= STACK {
            return Err(());
        }
        self.ops.push((op, prec));
        Ok(())
    }

    fn suffix(&mut self, mult: i64) -> R {
        let a = self.args.last_mut().ok_or(())?;
        *a = a.wrapping_mul(mult);
        Ok(())
    }
}

/// `strtoll(s, &end, 0)`: returns the value and the number of bytes used (0 when no
/// number could be read).
fn strtoll(s: &[u8]) -> (i64, usize) {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let (radix, digits_start) = if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        (16, i + 2)
    } else if s.get(i) == Some(&b'0') {
        (8, i)
    } else {
        (10, i)
    };
    let mut j = digits_start;
    let mut value: i128 = 0;
    while let Some(d) = s.get(j).and_then(|&b| (b as char).to_digit(radix)) {
        value = (value * i128::from(radix) + i128::from(d)).min(i128::from(i64::MAX) + 1);
        j += 1;
    }
    if j == digits_start {
        return (0, 0);
    }
    let value = if negative { -value } else { value };
    let clamped = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    (i64::try_from(clamped).unwrap_or(0), j)
}

/// Evaluates `expr` as fwup's `define-eval` does. `None` on any error (fwup: `error
/// evaluating '…'`).
pub(crate) fn eval_math(expr: &str) -> Option<i64> {
    let s = expr.as_bytes();
    let mut st = State {
        args: Vec::new(),
        ops: Vec::new(),
    };
    let mut pos = 0;
    let mut expect_number = true;
    while let Some(&c) = s.get(pos) {
        if expect_number {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
                b'(' => {
                    st.left_paren().ok()?;
                    pos += 1;
                }
                b')' => {
                    st.right_paren().ok()?;
                    pos += 1;
                }
                b'-' => {
                    st.push(Op::Neg, true, 4).ok()?;
                    pos += 1;
                }
                _ => {
                    let (value, used) = strtoll(&s[pos..]);
                    if used == 0 || st.args.len() >= STACK {
                        return None;
                    }
                    st.args.push(value);
                    pos += used;
                    expect_number = false;
                }
            }
            continue;
        }
        let r = match c {
            b' ' | b'\t' | b'\r' | b'\n' => Ok(()),
            b'+' | b'-' | b'*' | b'/' | b'^' => {
                expect_number = true;
                match c {
                    b'+' => st.push(Op::Add, false, 2),
                    b'-' => st.push(Op::Sub, false, 2),
                    b'*' => st.push(Op::Mul, false, 3),
                    b'/' => st.push(Op::Div, false, 3),
                    _ => st.push(Op::Pow, true, 4),
                }
            }
            b'(' => st.left_paren(),
            b')' => st.right_paren(),
            b'c' => st.suffix(1),
            b'w' => st.suffix(2),
            b'b' => st.suffix(512),
            b'k' if s.get(pos + 1) == Some(&b'B') => {
                pos += 1;
                st.suffix(1000)
            }
            b'K' => st.suffix(1024),
            b'M' | b'G' => {
                let (dec, bin) = if c == b'M' {
                    (1_000_000, 1 << 20)
                } else {
                    (1_000_000_000, 1 << 30)
                };
                if s.get(pos + 1) == Some(&b'B') {
                    pos += 1;
                    st.suffix(dec)
                } else {
                    st.suffix(bin)
                }
            }
            _ => Err(()),
        };
        r.ok()?;
        pos += 1;
    }
    while !st.ops.is_empty() {
        st.pop_operator().ok()?;
    }
    match st.args.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::eval_math;

    #[test]
    fn fwup_expressions() {
        assert_eq!(eval_math("100 * 2 + 8"), Some(208));
        assert_eq!(eval_math("(208 - 100) / 4"), Some(27));
        assert_eq!(eval_math("2^10"), Some(1024));
        assert_eq!(eval_math("-3 + 5"), Some(2));
        assert_eq!(eval_math("2 ^ 3 ^ 2"), Some(512));
        assert_eq!(eval_math("0x10 + 010"), Some(24));
        assert_eq!(eval_math("1K + 1kB"), Some(2024));
        assert_eq!(eval_math("2M / 1b"), Some(4096));
        assert_eq!(eval_math("1GB"), Some(1_000_000_000));
        assert_eq!(eval_math("9223372036854775807 + 1"), Some(i64::MIN));
        assert_eq!(eval_math("1 / 0"), None);
        assert_eq!(eval_math("(1"), None);
        assert_eq!(eval_math("1)"), None);
        assert_eq!(eval_math(""), None);
        assert_eq!(eval_math("abc"), None);
        assert_eq!(eval_math("1 +"), None);
    }
}
