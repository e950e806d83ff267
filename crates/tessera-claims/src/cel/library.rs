//! The DEP's `dex.*` functions: `dex.emailDomain`, `dex.emailLocalPart` (string → string) and
//! `dex.groupMatches` (groups matching a `*`/`?` glob), `dex.groupFilter` (groups in an allowed list).

use cel::common::types::{CelList, CelString, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

pub fn dex(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("dex.emailDomain", "dex.emailDomain(string)", vec![STRING_TYPE], email_domain)?;
    env.add_overload("dex.emailLocalPart", "dex.emailLocalPart(string)", vec![STRING_TYPE], email_local_part)?;
    env.add_overload("dex.groupMatches", "dex.groupMatches(list,string)", vec![LIST_TYPE, STRING_TYPE], group_matches)?;
    env.add_overload("dex.groupFilter", "dex.groupFilter(list,list)", vec![LIST_TYPE, LIST_TYPE], group_filter)?;
    Ok(())
}

fn unexpected(want: &str) -> ExecutionError {
    ExecutionError::UnexpectedType { got: "another type".into(), want: want.into() }
}

fn string_arg<'a>(args: &'a [CowVal<'_, '_>], index: usize) -> Result<&'a str, ExecutionError> {
    args.get(index)
        .and_then(|v| v.as_ref().downcast_ref::<CelString>())
        .map(|s| s.inner())
        .ok_or_else(|| unexpected("string"))
}

fn strings(args: &[CowVal<'_, '_>], index: usize) -> Result<Vec<String>, ExecutionError> {
    let list = args.get(index).and_then(|v| v.as_ref().as_iterable()).ok_or_else(|| unexpected("list"))?;
    let mut out = Vec::new();
    let mut items = list.iter();
    while let Some(item) = items.next() {
        out.push(item.downcast_ref::<CelString>().ok_or_else(|| unexpected("list(string)"))?.inner().to_owned());
    }
    Ok(out)
}

fn owned_string<'b, 'v>(text: &str) -> CowVal<'b, 'v> {
    CowVal::owned(CelString::from(text.to_owned()))
}

fn owned_strings<'b, 'v>(items: Vec<String>) -> CowVal<'b, 'v> {
    let boxed: Vec<Box<dyn Val + 'v>> =
        items.into_iter().map(|s| Box::new(CelString::from(s)) as Box<dyn Val + 'v>).collect();
    CowVal::owned(CelList::from(boxed))
}

fn email_domain<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let email = string_arg(&args, 0)?;
    Ok(owned_string(email.rsplit_once('@').map_or("", |(_, domain)| domain)))
}

fn email_local_part<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let email = string_arg(&args, 0)?;
    Ok(owned_string(email.rsplit_once('@').map_or(email, |(local, _)| local)))
}

fn group_matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let pattern: Vec<char> = string_arg(&args, 1)?.chars().collect();
    let groups = strings(&args, 0)?;
    Ok(owned_strings(groups.into_iter().filter(|g| glob(&pattern, &g.chars().collect::<Vec<_>>())).collect()))
}

fn group_filter<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let allowed = strings(&args, 1)?;
    let groups = strings(&args, 0)?;
    Ok(owned_strings(groups.into_iter().filter(|g| allowed.contains(g)).collect()))
}

/// `*` any run of characters, `?` one character; linear in the text times the pattern.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        glob(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>())
    }

    #[test]
    fn globs() {
        assert!(matches("team:*", "team:web"));
        assert!(matches("team:*", "team:"));
        assert!(!matches("team:*", "admin"));
        assert!(matches("*-admins", "ops-admins"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "abbc"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "axxbyyc"));
    }
}
