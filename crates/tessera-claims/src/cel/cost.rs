//! What an expression can cost, in the spirit of cel-go's estimator (which the `cel` crate lacks): one
//! unit per node, string work by the tenth of a character, a loop by its iterations times its body.
//! The estimate depends on how large the inputs can be — one bound, `size`, for the longest string
//! and the longest list anywhere in `identity`, `request` and `custom` — so it is computed once at
//! start-up with the DEP's size hints and again, before evaluating, when a token's inputs are larger
//! than the hints: evaluation never starts when the bound for the actual inputs exceeds the budget.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};

/// The DEP's defaults.
pub const DEFAULT_COST_BUDGET: u64 = 10_000_000;
pub const MAX_EXPRESSION_LENGTH: usize = 10_240;
/// Strings and lists are assumed at most this large at start-up (the DEP's 256 characters for strings,
/// 100 elements for lists: one bound, the larger).
pub const DEFAULT_SIZE_HINT: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Estimate {
    cost: u64,
    /// The largest string length or list/map length the value can have, anywhere inside it.
    size: u64,
}

/// The most an expression can cost when no string or list in its inputs is longer than `size`.
pub fn estimate(expr: &IdedExpr, size: u64) -> u64 {
    Estimator { size, locals: Vec::new() }.walk(expr).cost
}

struct Estimator {
    size: u64,
    locals: Vec<(String, u64)>,
}

/// A tenth, rounded up: string traversal is cheap per character.
fn tenth(n: u64) -> u64 {
    n.div_ceil(10)
}

impl Estimator {
    fn walk(&mut self, expr: &IdedExpr) -> Estimate {
        match &expr.expr {
            Expr::Unspecified | Expr::Struct(_) => Estimate { cost: 1, size: 1 },
            Expr::Literal(LiteralValue::String(s)) => Estimate { cost: 1, size: s.inner().len() as u64 },
            Expr::Literal(LiteralValue::Bytes(b)) => Estimate { cost: 1, size: b.inner().len() as u64 },
            Expr::Literal(_) => Estimate { cost: 1, size: 1 },
            Expr::Ident(name) => {
                let local = self.locals.iter().rev().find(|(n, _)| n == name).map(|(_, size)| *size);
                Estimate { cost: 1, size: local.unwrap_or(self.size) }
            }
            Expr::Select(select) => {
                let operand = self.walk(&select.operand);
                Estimate { cost: operand.cost.saturating_add(1), size: operand.size }
            }
            Expr::List(list) => self.all(&list.elements, list.elements.len() as u64),
            Expr::Map(map) => {
                let parts: Vec<IdedExpr> = map
                    .entries
                    .iter()
                    .flat_map(|entry| match &entry.expr {
                        EntryExpr::MapEntry(e) => vec![e.key.clone(), e.value.clone()],
                        EntryExpr::StructField(f) => vec![f.value.clone()],
                    })
                    .collect();
                self.all(&parts, map.entries.len() as u64)
            }
            Expr::Comprehension(c) => {
                let range = self.walk(&c.iter_range);
                let init = self.walk(&c.accu_init);
                let iterations = range.size;
                let depth = self.locals.len();
                self.locals.push((c.iter_var.clone(), range.size));
                if let Some(second) = &c.iter_var2 {
                    self.locals.push((second.clone(), range.size));
                }
                // The macros grow their accumulator by at most one element per iteration.
                let accu = init.size.saturating_add(iterations).max(range.size);
                self.locals.push((c.accu_var.clone(), accu));
                let condition = self.walk(&c.loop_cond);
                let step = self.walk(&c.loop_step);
                self.locals.truncate(depth);
                self.locals.push((c.accu_var.clone(), accu.max(step.size)));
                let result = self.walk(&c.result);
                self.locals.truncate(depth);
                let body = condition.cost.saturating_add(step.cost);
                Estimate {
                    cost: range
                        .cost
                        .saturating_add(init.cost)
                        .saturating_add(iterations.saturating_mul(body))
                        .saturating_add(result.cost),
                    size: result.size.max(accu),
                }
            }
            Expr::Call(call) => {
                // `lists.range(n)` is a call on the identifier `lists`: a namespace, not a value.
                let namespace = match call.target.as_deref().map(|t| &t.expr) {
                    Some(Expr::Ident(ns)) if super::check::NAMESPACES.contains(&ns.as_str()) => Some(ns.as_str()),
                    _ => None,
                };
                let name = namespace.map_or_else(|| call.func_name.clone(), |ns| format!("{ns}.{}", call.func_name));
                let target = call.target.as_deref().filter(|_| namespace.is_none()).map(|t| self.walk(t));
                let args: Vec<Estimate> = call.args.iter().map(|a| self.walk(a)).collect();
                let inner = target.iter().chain(&args).fold(0u64, |sum, e| sum.saturating_add(e.cost));
                let sizes: Vec<u64> = target.iter().chain(&args).map(|e| e.size).collect();
                let largest = sizes.iter().copied().max().unwrap_or(1);
                let first = sizes.first().copied().unwrap_or(1);
                let second = sizes.get(1).copied().unwrap_or(1);
                let (work, size) = match name.as_str() {
                    operators::EQUALS
                    | operators::NOT_EQUALS
                    | operators::LESS
                    | operators::LESS_EQUALS
                    | operators::GREATER
                    | operators::GREATER_EQUALS => (tenth(largest), 1),
                    operators::ADD => (tenth(first.saturating_add(second)), first.saturating_add(second)),
                    // A list scan, each element compared.
                    operators::IN => (second.saturating_mul(tenth(first).max(1)), 1),
                    "contains" | "startsWith" | "endsWith" | "indexOf" | "lastIndexOf" => (tenth(largest), 1),
                    // Linear-time regular expressions: the string times the pattern.
                    "matches" => (tenth(first.saturating_mul(second.max(1))), 1),
                    "lowerAscii" | "upperAscii" | "trim" | "reverse" | "substring" | "charAt" | "string" | "split"
                    | "base64.encode" | "base64.decode" | "dex.emailDomain" | "dex.emailLocalPart" => {
                        (tenth(first), first)
                    }
                    "replace" | "format" => {
                        let out = first.saturating_mul(largest.max(1));
                        (tenth(out), out)
                    }
                    // A list of strings joined: its length times theirs.
                    "join" | "flatten" => {
                        let out = first.saturating_mul(first);
                        (tenth(out), out)
                    }
                    "sort" | "distinct" | "dex.groupFilter" | "dex.groupMatches" | "slice" => {
                        (first.saturating_mul(largest), first)
                    }
                    "lists.range" => {
                        let n = match call.args.first().map(|a| &a.expr) {
                            Some(Expr::Literal(LiteralValue::Int(n))) => u64::try_from(*n.inner()).unwrap_or(0),
                            // Not a constant: no bound.
                            _ => u64::MAX / 4,
                        };
                        (n, n)
                    }
                    "size" | "int" | "uint" | "double" | "bool" | "type" | "dyn" | "hasValue" => (0, 1),
                    _ => (0, largest),
                };
                Estimate { cost: inner.saturating_add(1).saturating_add(work), size }
            }
        }
    }

    fn all(&mut self, items: &[IdedExpr], count: u64) -> Estimate {
        let mut estimate = Estimate { cost: 1, size: count };
        for item in items {
            let e = self.walk(item);
            estimate.cost = estimate.cost.saturating_add(e.cost);
            estimate.size = estimate.size.max(e.size);
        }
        estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(source: &str, size: u64) -> u64 {
        let program = cel::Env::stdlib().compile(source).unwrap();
        estimate(program.expression(), size)
    }

    #[test]
    fn loops_multiply_and_inputs_scale_the_bound() {
        let simple = cost("identity.email.endsWith('@example.com')", DEFAULT_SIZE_HINT);
        assert!(simple < 100, "{simple}");
        let one = cost("identity.groups.exists(g, g == 'admin')", DEFAULT_SIZE_HINT);
        let two = cost("identity.groups.exists(a, identity.groups.exists(b, a == b))", DEFAULT_SIZE_HINT);
        assert!(one > 256 && two > one * 100, "{one} {two}");
        let three = "identity.groups.all(a, identity.groups.all(b, identity.groups.all(c, a + b + c != '')))";
        assert!(cost(three, DEFAULT_SIZE_HINT) > DEFAULT_COST_BUDGET);
        assert!(cost(three, 10) < DEFAULT_COST_BUDGET);
        assert!(cost("lists.range(100000000).exists(i, i == 3)", DEFAULT_SIZE_HINT) > DEFAULT_COST_BUDGET);
    }
}
