//! The type checker the `cel` crate does not have: it walks a parsed expression with the declared
//! variables and tells, before anything runs, about an unknown variable or field, a function that
//! does not exist or does not take these arguments, and the type the expression evaluates to.
//! `dyn` (a value of `custom`) is accepted wherever a type is expected: it is checked at run time.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};

use super::types::{Object, Ty, VARIABLES, join, variable};

/// What is wrong, and in which node (for the column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    pub expr_id: u64,
    pub message: String,
}

/// Namespaces of the global functions (`dex.emailDomain`, `math.greatest`, ...).
pub(super) const NAMESPACES: [&str; 6] = ["dex", "math", "base64", "lists", "strings", "optional"];

const TYPE_NAMES: [&str; 10] = ["bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type"];

pub struct Checker {
    /// Comprehension variables in scope, innermost last.
    locals: Vec<(String, Ty)>,
}

type Checked = Result<Ty, CheckError>;

fn fail(expr: &IdedExpr, message: impl Into<String>) -> CheckError {
    CheckError { expr_id: expr.id, message: message.into() }
}

impl Checker {
    pub fn new() -> Self {
        Self { locals: Vec::new() }
    }

    pub fn check(&mut self, expr: &IdedExpr) -> Checked {
        match &expr.expr {
            Expr::Unspecified => Err(fail(expr, "empty expression")),
            Expr::Literal(literal) => Ok(literal_type(literal)),
            Expr::Ident(name) => self.ident(expr, name),
            Expr::Select(select) => {
                let operand = self.check(&select.operand)?;
                let field = field_of(expr, &operand, &select.field)?;
                Ok(if select.test { Ty::Bool } else { field })
            }
            Expr::List(list) => {
                let mut element = Ty::Dyn;
                for item in &list.elements {
                    let ty = self.check(item)?;
                    // Mixed lists are fine in CEL: they are list(dyn).
                    element = join(&element, &ty).unwrap_or(Ty::Dyn);
                }
                Ok(Ty::list(element))
            }
            Expr::Map(map) => {
                let (mut key, mut value) = (Ty::Dyn, Ty::Dyn);
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return Err(fail(expr, "a map literal has only key: value entries"));
                    };
                    let k = self.check(&entry.key)?;
                    if !matches!(k, Ty::String | Ty::Int | Ty::Uint | Ty::Bool | Ty::Dyn) {
                        return Err(fail(&entry.key, format!("a map key cannot be {k}")));
                    }
                    key = join(&key, &k).unwrap_or(Ty::Dyn);
                    let v = self.check(&entry.value)?;
                    value = join(&value, &v).unwrap_or(Ty::Dyn);
                }
                Ok(Ty::Map(Box::new(key), Box::new(value)))
            }
            Expr::Struct(s) => {
                Err(fail(expr, format!("message construction ({}{{...}}) is not supported here", s.type_name)))
            }
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                let (first, second) = match &range {
                    Ty::List(element) => (Ty::Int, (**element).clone()),
                    Ty::Map(key, value) => ((**key).clone(), (**value).clone()),
                    Ty::Dyn => (Ty::Dyn, Ty::Dyn),
                    other => return Err(fail(&c.iter_range, format!("cannot iterate over {other}"))),
                };
                let init = self.check(&c.accu_init)?;
                let depth = self.locals.len();
                match &c.iter_var2 {
                    // Two variables: (index, element) or (key, value).
                    Some(second_name) => {
                        self.locals.push((c.iter_var.clone(), first));
                        self.locals.push((second_name.clone(), second));
                    }
                    None if matches!(range, Ty::List(_)) => self.locals.push((c.iter_var.clone(), second)),
                    None => self.locals.push((c.iter_var.clone(), first)),
                }
                self.locals.push((c.accu_var.clone(), init.clone()));
                let condition = self.check(&c.loop_cond)?;
                if !condition.fits(&Ty::Bool) {
                    return Err(fail(&c.loop_cond, format!("a loop condition must be bool, not {condition}")));
                }
                let step = self.check(&c.loop_step)?;
                let accu = join(&init, &step).unwrap_or(Ty::Dyn);
                self.locals.truncate(depth);
                self.locals.push((c.accu_var.clone(), accu));
                let result = self.check(&c.result);
                self.locals.truncate(depth);
                result
            }
            Expr::Call(call) => {
                // `dex.emailDomain(x)` parses as a call on the identifier `dex`.
                if let Some(target) = &call.target
                    && let Expr::Ident(namespace) = &target.expr
                    && NAMESPACES.contains(&namespace.as_str())
                    && self.local(namespace).is_none()
                {
                    let name = format!("{namespace}.{}", call.func_name);
                    let args = call.args.iter().map(|a| self.check(a)).collect::<Result<Vec<_>, _>>()?;
                    return global(expr, &name, &args);
                }
                let target = call.target.as_ref().map(|t| self.check(t)).transpose()?;
                let args = call.args.iter().map(|a| self.check(a)).collect::<Result<Vec<_>, _>>()?;
                match target {
                    Some(target) => member(expr, &call.func_name, &target, &args),
                    None => global(expr, &call.func_name, &args),
                }
            }
        }
    }

    fn local(&self, name: &str) -> Option<&Ty> {
        self.locals.iter().rev().find(|(n, _)| n == name).map(|(_, ty)| ty)
    }

    fn ident(&self, expr: &IdedExpr, name: &str) -> Checked {
        if let Some(ty) = self.local(name) {
            return Ok(ty.clone());
        }
        if let Some(ty) = variable(name) {
            return Ok(ty);
        }
        if TYPE_NAMES.contains(&name) {
            return Ok(Ty::Type);
        }
        Err(fail(expr, format!("undeclared reference to {name:?} (the variables are {})", VARIABLES.join(", "))))
    }
}

fn literal_type(literal: &LiteralValue) -> Ty {
    match literal {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

fn field_of(expr: &IdedExpr, operand: &Ty, field: &str) -> Checked {
    match operand {
        Ty::Object(object) => object.field(field).ok_or_else(|| unknown_field(expr, *object, field)),
        Ty::Map(_, value) => Ok((**value).clone()),
        Ty::Dyn => Ok(Ty::Dyn),
        other => Err(fail(expr, format!("{other} has no field {field:?}"))),
    }
}

fn unknown_field(expr: &IdedExpr, object: Object, field: &str) -> CheckError {
    fail(expr, format!("{} has no field {field:?} (its fields are {})", object.name(), object.field_names().join(", ")))
}

fn no_overload(expr: &IdedExpr, name: &str, types: &[&Ty]) -> CheckError {
    let types: Vec<String> = types.iter().map(ToString::to_string).collect();
    fail(expr, format!("no function {name:?} takes ({})", types.join(", ")))
}

/// All of `args` fit the types in `want`, in number and kind.
fn takes(args: &[Ty], want: &[Ty]) -> bool {
    args.len() == want.len() && args.iter().zip(want).all(|(a, w)| a.fits(w))
}

fn element(list: &Ty) -> Ty {
    match list {
        Ty::List(element) => (**element).clone(),
        _ => Ty::Dyn,
    }
}

fn is_list(ty: &Ty) -> bool {
    matches!(ty, Ty::List(_) | Ty::Dyn)
}

/// Operators and global functions.
fn global(expr: &IdedExpr, name: &str, args: &[Ty]) -> Checked {
    let refs: Vec<&Ty> = args.iter().collect();
    let bad = || no_overload(expr, name, &refs);
    let string = Ty::String;
    Ok(match (name, args) {
        (operators::LOGICAL_AND | operators::LOGICAL_OR, [a, b]) => {
            if !a.fits(&Ty::Bool) || !b.fits(&Ty::Bool) {
                return Err(bad());
            }
            Ty::Bool
        }
        (operators::LOGICAL_NOT | operators::NOT_STRICTLY_FALSE, [a]) => {
            if !a.fits(&Ty::Bool) {
                return Err(bad());
            }
            Ty::Bool
        }
        (operators::CONDITIONAL, [c, a, b]) => {
            if !c.fits(&Ty::Bool) {
                return Err(fail(expr, format!("the condition of ?: must be bool, not {c}")));
            }
            join(a, b).ok_or_else(|| fail(expr, format!("the branches of ?: are {a} and {b}, which do not mix")))?
        }
        (operators::EQUALS | operators::NOT_EQUALS, [a, b]) => {
            if join(a, b).is_none() && !(a.is_number() && b.is_number()) {
                return Err(fail(expr, format!("cannot compare {a} with {b}")));
            }
            Ty::Bool
        }
        (operators::LESS | operators::LESS_EQUALS | operators::GREATER | operators::GREATER_EQUALS, [a, b]) => {
            let ordered =
                |t: &Ty| matches!(t, Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::Bool | Ty::Dyn);
            let comparable = (a.is_number() && b.is_number()) || join(a, b).is_some();
            if !ordered(a) || !ordered(b) || !comparable {
                return Err(bad());
            }
            Ty::Bool
        }
        (operators::ADD, [a, b]) => match join(a, b) {
            Some(t @ (Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::List(_) | Ty::Dyn)) => t,
            _ => return Err(bad()),
        },
        (operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE | operators::MODULO, [a, b]) => {
            match join(a, b) {
                Some(t @ (Ty::Int | Ty::Uint | Ty::Dyn)) => t,
                Some(Ty::Double) if name != operators::MODULO => Ty::Double,
                _ => return Err(bad()),
            }
        }
        (operators::NEGATE, [a]) if matches!(a, Ty::Int | Ty::Double | Ty::Dyn) => a.clone(),
        (operators::INDEX, [container, index]) => match container {
            Ty::List(element) if index.fits(&Ty::Int) || index.fits(&Ty::Uint) => (**element).clone(),
            Ty::Map(key, value) if index.fits(key) => (**value).clone(),
            Ty::Dyn => Ty::Dyn,
            _ => return Err(bad()),
        },
        (operators::OPT_INDEX, [container, _]) => match container {
            Ty::List(element) => Ty::Optional(element.clone()),
            Ty::Map(_, value) => Ty::Optional(value.clone()),
            Ty::Dyn => Ty::Optional(Box::new(Ty::Dyn)),
            _ => return Err(bad()),
        },
        (operators::OPT_SELECT, [operand, _]) => match operand {
            Ty::Map(_, value) => Ty::Optional(value.clone()),
            Ty::Dyn => Ty::Optional(Box::new(Ty::Dyn)),
            _ => return Err(bad()),
        },
        (operators::IN, [item, container]) => {
            let fits = match container {
                Ty::List(element) => join(item, element).is_some(),
                Ty::Map(key, _) => join(item, key).is_some(),
                Ty::Dyn => true,
                _ => false,
            };
            if !fits {
                return Err(bad());
            }
            Ty::Bool
        }
        ("size", [Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..) | Ty::Dyn]) => Ty::Int,
        ("int", [Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Dyn]) => Ty::Int,
        ("uint", [Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Dyn]) => Ty::Uint,
        ("double", [Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Dyn]) => Ty::Double,
        ("string", [a]) if !matches!(a, Ty::List(_) | Ty::Map(..) | Ty::Object(_) | Ty::Optional(_)) => Ty::String,
        ("bool", [Ty::Bool | Ty::String | Ty::Dyn]) => Ty::Bool,
        ("bytes", [Ty::Bytes | Ty::String | Ty::Dyn]) => Ty::Bytes,
        ("dyn", [_]) => Ty::Dyn,
        ("type", [_]) => Ty::Type,
        ("dex.emailDomain" | "dex.emailLocalPart", [a]) if a.fits(&string) => Ty::String,
        ("dex.groupMatches", [groups, pattern])
            if takes(&[groups.clone(), pattern.clone()], &[Ty::list(Ty::String), Ty::String]) =>
        {
            Ty::list(Ty::String)
        }
        ("dex.groupFilter", [groups, allowed]) if takes(args, &[Ty::list(Ty::String), Ty::list(Ty::String)]) => {
            let _ = (groups, allowed);
            Ty::list(Ty::String)
        }
        ("math.greatest" | "math.least", [single]) if is_list(single) => element(single),
        ("math.greatest" | "math.least", many) if !many.is_empty() && many.iter().all(Ty::is_number) => {
            many.iter().try_fold(Ty::Dyn, |acc, t| join(&acc, t)).unwrap_or(Ty::Dyn)
        }
        ("math.ceil" | "math.floor" | "math.round" | "math.trunc", [a]) if a.fits(&Ty::Double) => Ty::Double,
        ("math.abs" | "math.sign", [a]) if a.is_number() => a.clone(),
        ("math.isInf" | "math.isNaN" | "math.isFinite", [a]) if a.fits(&Ty::Double) => Ty::Bool,
        ("math.sqrt", [a]) if a.is_number() => Ty::Double,
        ("base64.encode", [a]) if a.fits(&Ty::Bytes) => Ty::String,
        ("base64.decode", [a]) if a.fits(&string) => Ty::Bytes,
        ("lists.range", [a]) if a.fits(&Ty::Int) => Ty::list(Ty::Int),
        ("strings.quote", [a]) if a.fits(&string) => Ty::String,
        ("optional.of" | "optional.ofNonZeroValue", [a]) => Ty::Optional(Box::new(a.clone())),
        ("optional.none", []) => Ty::Optional(Box::new(Ty::Dyn)),
        (
            "dex.emailDomain" | "dex.emailLocalPart" | "dex.groupMatches" | "dex.groupFilter" | "size" | "int" | "uint"
            | "double" | "string" | "bool" | "bytes" | "dyn" | "type",
            _,
        ) => return Err(bad()),
        _ if name.starts_with('_') || name.starts_with('@') || name.starts_with('!') || name.starts_with('-') => {
            return Err(bad());
        }
        _ if name.contains('.') && NAMESPACES.iter().any(|ns| name.starts_with(&format!("{ns}."))) => {
            return Err(bad());
        }
        _ => return Err(fail(expr, format!("unknown function {name:?}"))),
    })
}

/// Functions called on a value (`x.startsWith('a')`).
fn member(expr: &IdedExpr, name: &str, target: &Ty, args: &[Ty]) -> Checked {
    let mut all = vec![target];
    all.extend(args.iter());
    let bad = || no_overload(expr, name, &all);
    let string = || Ty::String;
    let on_string = matches!(target, Ty::String | Ty::Dyn);
    Ok(match name {
        "size" if args.is_empty() && matches!(target, Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..) | Ty::Dyn) => {
            Ty::Int
        }
        "contains" | "startsWith" | "endsWith" | "matches" if on_string && takes(args, &[string()]) => Ty::Bool,
        "lowerAscii" | "upperAscii" | "trim" if on_string && args.is_empty() => Ty::String,
        "reverse" if on_string && args.is_empty() && !is_list(target) => Ty::String,
        "reverse" | "distinct" | "sort" if is_list(target) && args.is_empty() => target.clone(),
        "charAt" if on_string && takes(args, &[Ty::Int]) => Ty::String,
        "indexOf" | "lastIndexOf" if on_string && (takes(args, &[string()]) || takes(args, &[string(), Ty::Int])) => {
            Ty::Int
        }
        "replace"
            if on_string && (takes(args, &[string(), string()]) || takes(args, &[string(), string(), Ty::Int])) =>
        {
            Ty::String
        }
        "split" if on_string && (takes(args, &[string()]) || takes(args, &[string(), Ty::Int])) => Ty::list(Ty::String),
        "substring" if on_string && (takes(args, &[Ty::Int]) || takes(args, &[Ty::Int, Ty::Int])) => Ty::String,
        "format" if on_string && args.len() == 1 && is_list(&args[0]) => Ty::String,
        "join" if is_list(target) && (args.is_empty() || takes(args, &[string()])) => {
            if !element(target).fits(&Ty::String) {
                return Err(bad());
            }
            Ty::String
        }
        "slice" if is_list(target) && takes(args, &[Ty::Int, Ty::Int]) => target.clone(),
        "flatten" if is_list(target) && (args.is_empty() || takes(args, &[Ty::Int])) => Ty::list(Ty::Dyn),
        "orValue" if args.len() == 1 => match target {
            Ty::Optional(inner) => join(inner, &args[0]).unwrap_or(Ty::Dyn),
            Ty::Dyn => Ty::Dyn,
            _ => return Err(bad()),
        },
        "or" if args.len() == 1 && matches!(target, Ty::Optional(_) | Ty::Dyn) => target.clone(),
        "hasValue" if args.is_empty() && matches!(target, Ty::Optional(_) | Ty::Dyn) => Ty::Bool,
        "value" if args.is_empty() => match target {
            Ty::Optional(inner) => (**inner).clone(),
            Ty::Dyn => Ty::Dyn,
            _ => return Err(bad()),
        },
        "size" | "contains" | "startsWith" | "endsWith" | "matches" | "lowerAscii" | "upperAscii" | "trim"
        | "reverse" | "distinct" | "sort" | "charAt" | "indexOf" | "lastIndexOf" | "replace" | "split"
        | "substring" | "format" | "join" | "slice" | "flatten" | "orValue" | "or" | "hasValue" | "value" => {
            return Err(bad());
        }
        _ => return Err(fail(expr, format!("unknown function {name:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str) -> Result<Ty, String> {
        let program = cel::Env::stdlib().compile(source).map_err(|e| e.to_string())?;
        Checker::new().check(program.expression()).map_err(|e| e.message)
    }

    #[test]
    fn the_deps_examples_check() {
        assert_eq!(check("!identity.email.endsWith('@example.com')"), Ok(Ty::Bool));
        assert_eq!(check("identity.groups.exists(g, g == 'admin') ? 'admin' : 'user'"), Ok(Ty::String));
        assert_eq!(check("request.connector_id"), Ok(Ty::String));
        assert_eq!(check("!(request.connector_id in ['okta', 'ldap'])"), Ok(Ty::Bool));
        assert_eq!(check("request.scopes.all(s, s in ['openid', 'email', 'profile'])"), Ok(Ty::Bool));
        assert_eq!(check("'Unsupported scope requested'"), Ok(Ty::String));
        assert_eq!(check("custom.plan == 'enterprise' ? ['sso', 'audit'] : []"), Ok(Ty::list(Ty::String)));
        assert_eq!(check("identity.groups.map(g, g.upperAscii())"), Ok(Ty::list(Ty::String)));
        assert_eq!(check("identity.groups.filter(g, g.startsWith('team:'))"), Ok(Ty::list(Ty::String)));
        assert_eq!(check("has(custom.plan) && custom.plan.startsWith('ent')"), Ok(Ty::Bool));
        assert_eq!(check("dex.emailDomain(identity.email)"), Ok(Ty::String));
        assert_eq!(check("{'a': 1, 'b': 2}"), Ok(Ty::Map(Box::new(Ty::String), Box::new(Ty::Int))));
        assert_eq!(check("size(identity.groups) > 2"), Ok(Ty::Bool));
        assert_eq!(check("custom.?tier.orValue('free')"), Ok(Ty::String));
    }

    #[test]
    fn mistakes_are_named() {
        let err = check("identity.emial").unwrap_err();
        assert!(err.contains("identity has no field \"emial\"") && err.contains("email_verified"), "{err}");
        assert!(check("request.client").unwrap_err().contains("request has no field \"client\""));
        assert!(check("idenity.email").unwrap_err().contains("undeclared reference to \"idenity\""));
        assert!(check("identity.email.startsWith(1)").unwrap_err().contains("no function \"startsWith\""));
        assert!(check("identity.email == 1").unwrap_err().contains("cannot compare string with int"));
        assert!(check("identity.email.frobnicate()").unwrap_err().contains("unknown function \"frobnicate\""));
        assert!(check("true ? 'a' : 1").unwrap_err().contains("do not mix"));
        assert!(check("identity.email_verified.size()").unwrap_err().contains("no function \"size\""));
        assert!(check("identity.groups.exists(g, g.emial)").unwrap_err().contains("string has no field"));
    }
}
