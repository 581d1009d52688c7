//! The arguments of `#[profiled(...)]` and the checks on the item it is put on. Everything
//! here runs whether or not the `enabled` feature is on, so misuse is caught either way.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Ident, ImplItem, Item, Lit, LitStr, Path, UnOp};

/// The keys `#[profiled]` accepts, in the order error messages list them.
const KEYS: &str = "name, sample, db, crate, skip";

/// The validated arguments of one `#[profiled(...)]` attribute.
#[derive(Default, Clone)]
pub(crate) struct Args {
    /// `name = "..."`: the label, used verbatim.
    pub(crate) name: Option<LitStr>,
    /// `sample = 0.25`: the site's own sample rate, in `0..=1`.
    pub(crate) sample: Option<f64>,
    /// `db = "postgres"`: record calls as queries of this database vendor.
    pub(crate) db: Option<LitStr>,
    /// `crate = path`: where the profilis crate is.
    pub(crate) krate: Option<Path>,
    /// `skip`: leave the item alone.
    pub(crate) skip: bool,
}

impl Args {
    /// The arguments of a method's own attribute on top of those of its impl block: the
    /// method's win.
    pub(crate) fn over(self, outer: &Args) -> Args {
        Args {
            name: self.name,
            sample: self.sample.or(outer.sample),
            db: self.db.or_else(|| outer.db.clone()),
            krate: self.krate.or_else(|| outer.krate.clone()),
            skip: self.skip,
        }
    }

    /// The path generated code uses to reach the profilis crate.
    #[cfg(feature = "enabled")]
    pub(crate) fn crate_path(&self) -> TokenStream {
        match &self.krate {
            Some(path) => path.to_token_stream(),
            None => quote::quote!(::profilis),
        }
    }
}

/// Adds `error` to the errors collected so far.
fn push(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(all) => all.combine(error),
        None => *errors = Some(error),
    }
}

/// One `key` or `key = value` as written, before its value is checked.
struct RawArg {
    key: Ident,
    /// The `=` and what follows it up to the next top-level comma.
    value: Option<(syn::Token![=], TokenStream)>,
}

/// Parses and validates the arguments of `#[profiled(...)]`, reporting every fault at once.
pub(crate) fn parse_args(tokens: TokenStream) -> syn::Result<Args> {
    let raw = (|input: ParseStream| parse_raw(input)).parse2(tokens)?;
    let mut args = Args::default();
    let mut errors = None;
    let mut seen: Vec<String> = Vec::new();
    for arg in raw {
        let key = arg.key.unraw().to_string();
        if !matches!(key.as_str(), "name" | "sample" | "db" | "crate" | "skip") {
            push(
                &mut errors,
                syn::Error::new(
                    arg.key.span(),
                    format!("unknown profiled argument `{key}`; expected one of: {KEYS}"),
                ),
            );
            continue;
        }
        if seen.contains(&key) {
            push(
                &mut errors,
                syn::Error::new(
                    arg.key.span(),
                    format!("duplicate profiled argument `{key}`"),
                ),
            );
            continue;
        }
        seen.push(key.clone());
        let result = match key.as_str() {
            "skip" => match arg.value {
                None => {
                    args.skip = true;
                    Ok(())
                }
                Some((eq, value)) => Err(syn::Error::new_spanned(
                    quote::quote!(#eq #value),
                    "`skip` takes no value: write `#[profiled(skip)]`",
                )),
            },
            _ => match arg.value {
                None => Err(syn::Error::new(
                    arg.key.span(),
                    match key.as_str() {
                        "name" => "expected `name = \"...\"`",
                        "sample" => "expected `sample = <rate in 0..=1>`, e.g. `sample = 0.25`",
                        "db" => "expected `db = \"<vendor>\"`, e.g. `db = \"postgres\"`",
                        _ => "expected `crate = <path>`, e.g. `crate = ::profilis`",
                    },
                )),
                Some((_, value)) => match key.as_str() {
                    "name" => parse_name(value).map(|name| args.name = Some(name)),
                    "sample" => parse_sample(value).map(|rate| args.sample = Some(rate)),
                    "db" => parse_db(value).map(|vendor| args.db = Some(vendor)),
                    _ => parse_crate(value).map(|path| args.krate = Some(path)),
                },
            },
        };
        if let Err(error) = result {
            push(&mut errors, error);
        }
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(args),
    }
}

/// Splits the arguments at top-level commas into keys and raw values. Only token-level
/// faults (a key that is not an identifier, an empty value) stop here.
fn parse_raw(input: ParseStream) -> syn::Result<Vec<RawArg>> {
    let mut raw = Vec::new();
    while !input.is_empty() {
        let key = match Ident::parse_any(input) {
            Ok(key) => key,
            Err(_) => {
                return Err(syn::Error::new(
                    input.span(),
                    format!("expected a profiled argument, one of: {KEYS}"),
                ))
            }
        };
        let value = if input.peek(syn::Token![=]) {
            let eq: syn::Token![=] = input.parse()?;
            let value = input.step(|cursor| {
                let mut rest = *cursor;
                let mut value = TokenStream::new();
                while let Some((tt, next)) = rest.token_tree() {
                    if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                        break;
                    }
                    value.extend([tt]);
                    rest = next;
                }
                Ok((value, rest))
            })?;
            if value.is_empty() {
                return Err(syn::Error::new(
                    eq.span,
                    format!("expected a value after `{} =`", key.unraw()),
                ));
            }
            Some((eq, value))
        } else {
            None
        };
        raw.push(RawArg { key, value });
        if input.is_empty() {
            break;
        }
        if !input.peek(syn::Token![,]) {
            return Err(input.error("expected `,` between profiled arguments"));
        }
        input.parse::<syn::Token![,]>()?;
    }
    Ok(raw)
}

fn parse_name(value: TokenStream) -> syn::Result<LitStr> {
    let message = "`name` must be a string literal, e.g. `name = \"load_user\"`";
    let name: LitStr =
        syn::parse2(value.clone()).map_err(|_| syn::Error::new_spanned(&value, message))?;
    let value = name.value();
    if value.is_empty() {
        return Err(syn::Error::new(name.span(), "`name` must not be empty"));
    }
    // A label value may hold any character, but no one means a line feed or a NUL in a
    // function's name: it is a typo or a generated string gone wrong.
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "`name` must not contain control characters (line feeds, tabs, NUL, DEL, ...): \
                 {value:?} contains {c:?} (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(name)
}

/// A database vendor: the `db_vendor` label value, so short and plain (`postgres`, `sqlite`).
fn parse_db(value: TokenStream) -> syn::Result<LitStr> {
    let message =
        "`db` must be a string literal naming the database vendor, e.g. `db = \"postgres\"`";
    let vendor: LitStr =
        syn::parse2(value.clone()).map_err(|_| syn::Error::new_spanned(&value, message))?;
    let text = vendor.value();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if text.is_empty() || !plain {
        return Err(syn::Error::new(
            vendor.span(),
            format!(
                "`db` must be a vendor name of lowercase letters, digits, `_` and `-` \
                 (like \"postgres\"), found {:?}",
                text
            ),
        ));
    }
    Ok(vendor)
}

fn parse_sample(value: TokenStream) -> syn::Result<f64> {
    let not_a_number = |value: &TokenStream| {
        syn::Error::new_spanned(
            value,
            format!("`sample` must be a number in 0..=1 (like `0.25`), found `{value}`"),
        )
    };
    let expr: Expr = syn::parse2(value.clone()).map_err(|_| not_a_number(&value))?;
    let (negative, lit) = match &expr {
        Expr::Lit(ExprLit { lit, .. }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => (true, lit),
            _ => return Err(not_a_number(&value)),
        },
        _ => return Err(not_a_number(&value)),
    };
    let rate = match lit {
        Lit::Float(f) => f.base10_parse::<f64>()?,
        Lit::Int(i) => i.base10_parse::<f64>()?,
        _ => return Err(not_a_number(&value)),
    };
    let rate = if negative { -rate } else { rate };
    if !(0.0..=1.0).contains(&rate) {
        let sign = if negative { "-" } else { "" };
        let written = lit.to_token_stream();
        return Err(syn::Error::new_spanned(
            &value,
            format!("`sample` must be in 0..=1, found `{sign}{written}`"),
        ));
    }
    // `-0.0` is a valid zero; keep the sign out of the generated literal.
    Ok(rate.abs())
}

fn parse_crate(value: TokenStream) -> syn::Result<Path> {
    Parser::parse2(Path::parse_mod_style, value.clone()).map_err(|_| {
        syn::Error::new_spanned(
            &value,
            "`crate` must be a path to the profilis crate, e.g. `crate = ::profilis`",
        )
    })
}

/// Whether `attr` is a `#[profiled]` attribute (under any path ending in `profiled`).
pub(crate) fn is_profiled(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "profiled")
}

/// The arguments of a `#[profiled]` attribute found on a method of an impl block.
fn method_args(attr: &Attribute) -> syn::Result<Args> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok(Args::default()),
        syn::Meta::List(list) => parse_args(list.tokens.clone()),
        syn::Meta::NameValue(nv) => Err(syn::Error::new_spanned(
            nv,
            "expected `#[profiled]` or `#[profiled(...)]`",
        )),
    }
}

/// What to do with each item of an impl block: `Some(args)` instruments a method with them,
/// `None` leaves the item alone.
pub(crate) type ImplPlan = Vec<Option<Args>>;

/// A checked item: what the attribute was put on, with inner `#[profiled]` attributes of an
/// impl block removed.
#[cfg_attr(not(feature = "enabled"), allow(dead_code))]
pub(crate) enum Target {
    Fn(syn::ItemFn),
    Impl(syn::ItemImpl, ImplPlan),
}

impl Target {
    /// The item without the inner `#[profiled]` attributes, uninstrumented.
    #[cfg(not(feature = "enabled"))]
    pub(crate) fn into_plain(self) -> TokenStream {
        match self {
            Target::Fn(f) => f.into_token_stream(),
            Target::Impl(i, _) => i.into_token_stream(),
        }
    }
}

/// Checks the item `#[profiled]` was put on and, for an impl block, the `#[profiled]`
/// attributes of its methods. On error, the item comes back too, so it can be emitted.
pub(crate) fn check_item(item: Item, outer: &Args) -> (TokenStream, syn::Result<Target>) {
    match item {
        Item::Fn(f) => {
            let second = f.attrs.iter().find(|attr| is_profiled(attr));
            let result = match (second, f.sig.constness) {
                (Some(second), _) => Err(second_attribute_error(second)),
                (None, Some(constness)) if !outer.skip => Err(const_fn_error(constness.span)),
                _ if already_instrumented(&f.block) => {
                    Err(already_instrumented_error(&f.sig, outer.skip))
                }
                _ => Ok(()),
            };
            let tokens = f.to_token_stream();
            (tokens, result.map(|()| Target::Fn(f)))
        }
        Item::Impl(mut imp) => {
            let mut errors = None;
            if let Some(second) = imp.attrs.iter().find(|attr| is_profiled(attr)) {
                push(&mut errors, second_attribute_error(second));
            }
            if let Some(name) = &outer.name {
                // One label for every method would merge them into one series.
                push(
                    &mut errors,
                    syn::Error::new(
                        name.span(),
                        "`name` cannot be used on an impl block; put it on a method",
                    ),
                );
            }
            let mut plan = Vec::with_capacity(imp.items.len());
            for item in &mut imp.items {
                let ImplItem::Fn(method) = item else {
                    plan.push(None);
                    continue;
                };
                if already_instrumented(&method.block) {
                    // A second #[profiled] on the block (or one renamed): the first has
                    // instrumented every method already.
                    push(
                        &mut errors,
                        already_instrumented_error(&method.sig, outer.skip),
                    );
                    plan.push(None);
                    continue;
                }
                let mut own: Option<Args> = None;
                let mut found = false;
                let mut kept = Vec::with_capacity(method.attrs.len());
                for attr in method.attrs.drain(..) {
                    if !is_profiled(&attr) {
                        kept.push(attr);
                        continue;
                    }
                    if found {
                        push(
                            &mut errors,
                            syn::Error::new_spanned(
                                &attr,
                                "duplicate #[profiled] attribute on this method",
                            ),
                        );
                        continue;
                    }
                    found = true;
                    match method_args(&attr) {
                        Ok(args) => own = Some(args),
                        Err(e) => push(&mut errors, e),
                    }
                }
                method.attrs = kept;
                let args = match own {
                    Some(own) => {
                        if let (Some(constness), false) = (method.sig.constness, own.skip) {
                            push(&mut errors, const_fn_error(constness.span));
                        }
                        own.over(outer)
                    }
                    // The impl-level attribute leaves const fns alone: they cannot be timed.
                    None if method.sig.constness.is_some() => Args {
                        skip: true,
                        ..Args::default()
                    },
                    None => Args {
                        name: None,
                        ..outer.clone()
                    },
                };
                plan.push((!args.skip && !outer.skip).then_some(args));
            }
            let tokens = imp.to_token_stream();
            let result = match errors {
                Some(e) => Err(e),
                None => Ok(Target::Impl(imp, plan)),
            };
            (tokens, result)
        }
        other => {
            let span = item_span(&other);
            let message = if is_bodyless_fn(&other) {
                "#[profiled] needs a function body, and a declaration has none: for a trait \
                 method, put it on the method in each impl (or on a default body); for a \
                 function of an `extern` block, on a Rust function that calls it"
            } else {
                "#[profiled] can only be used on functions and impl blocks"
            };
            (
                other.into_token_stream(),
                Err(syn::Error::new(span, message)),
            )
        }
    }
}

/// A function without a body (`fn price(&self) -> u32;` in a trait, `fn abs(x: i32) -> i32;`
/// in an `extern` block), which syn reads as an opaque item.
fn is_bodyless_fn(item: &Item) -> bool {
    let Item::Verbatim(tokens) = item else {
        return false;
    };
    tokens
        .clone()
        .into_iter()
        .any(|tt| matches!(tt, TokenTree::Ident(ident) if ident == "fn"))
}

fn const_fn_error(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "#[profiled] cannot be used on a const fn (a call evaluated at compile time cannot be \
         timed): remove `const` to profile it, or remove the attribute",
    )
}

/// A second `#[profiled]` on the item (`attr`, the one after this): each call would be
/// recorded twice, or a `skip` ignored.
fn second_attribute_error(attr: &Attribute) -> syn::Error {
    syn::Error::new_spanned(
        attr,
        "#[profiled] is on this item twice: each call would be recorded twice (or a skip \
         ignored). Keep one",
    )
}

/// Whether `block` is the body `#[profiled]` made of a function (its first statement is the
/// call site's `static`): a method of a `#[profiled]` impl block that carries a second
/// `#[profiled]` the block did not see as one (renamed by `use .. as`, or inside `cfg_attr`).
fn already_instrumented(block: &syn::Block) -> bool {
    matches!(
        block.stmts.first(),
        Some(syn::Stmt::Item(Item::Static(s))) if s.ident == "__PROFILIS_SITE"
    )
}

fn already_instrumented_error(sig: &syn::Signature, skip: bool) -> syn::Error {
    let message = if skip {
        "this #[profiled(skip)] is ignored: the function is already instrumented by a \
         #[profiled] above it (on the function or on its impl block). An impl block's \
         #[profiled] reads a method's own #[profiled(skip)] only when its path ends in \
         `profiled`: not renamed with `use .. as`, not inside `cfg_attr`"
    } else {
        "this function is already instrumented by a #[profiled] above this one (on the \
         function or on its impl block): each call would be recorded twice. Keep one. An impl \
         block's #[profiled] reads a method's own #[profiled(..)] or #[profiled(skip)] only \
         when its path ends in `profiled`: not renamed with `use .. as`, not inside `cfg_attr`"
    };
    syn::Error::new(sig.ident.span(), message)
}

/// The span of the keyword that says what kind of item this is (`struct`, `trait`, ...),
/// falling back to the whole item.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Struct(i) => i.struct_token.span,
        Item::Enum(i) => i.enum_token.span,
        Item::Trait(i) => i.trait_token.span,
        Item::Mod(i) => i.mod_token.span,
        Item::Const(i) => i.const_token.span,
        Item::Static(i) => i.static_token.span,
        Item::Type(i) => i.type_token.span,
        Item::Union(i) => i.union_token.span,
        Item::Use(i) => i.use_token.span,
        other => other.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn sample(tokens: TokenStream) -> Result<f64, String> {
        parse_args(quote!(sample = #tokens))
            .map(|args| args.sample.unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sample_accepts_number_literals_in_range() {
        assert_eq!(sample(quote!(0)), Ok(0.0));
        assert_eq!(sample(quote!(1)), Ok(1.0));
        assert_eq!(sample(quote!(1.0)), Ok(1.0));
        assert_eq!(sample(quote!(0.25)), Ok(0.25));
        assert_eq!(sample(quote!(25e-2)), Ok(0.25));
        assert_eq!(sample(quote!(0.5f64)), Ok(0.5));
        assert_eq!(sample(quote!(-0.0)), Ok(0.0));
    }

    #[test]
    fn sample_rejects_the_rest() {
        for bad in [
            quote!(1.01),
            quote!(-0.5),
            quote!(2),
            quote!("0.5"),
            quote!(RATE),
        ] {
            let error = sample(bad.clone()).expect_err("rejected");
            assert!(error.contains("0..=1"), "{bad}: {error}");
        }
    }

    #[test]
    fn names_may_hold_any_character_but_control_characters() {
        let name = |tokens: TokenStream| {
            parse_args(quote!(name = #tokens))
                .map(|args| args.name.unwrap().value())
                .map_err(|e| e.to_string())
        };
        assert_eq!(name(quote!("a\"b")), Ok("a\"b".to_owned()));
        assert_eq!(name(quote!("bs\\")), Ok("bs\\".to_owned()));
        assert_eq!(name(quote!("ünï ✓")), Ok("ünï ✓".to_owned()));
        for (bad, found) in [
            (quote!("a\nb"), "'\\n' (U+000A)"),
            (quote!("a\rb"), "'\\r' (U+000D)"),
            (quote!("a\0b"), "'\\0' (U+0000)"),
            (quote!("tab\t"), "'\\t' (U+0009)"),
            (quote!("del\x7f"), "'\\u{7f}' (U+007F)"),
            (quote!("nel\u{85}"), "'\\u{85}' (U+0085)"),
        ] {
            let error = name(bad.clone()).expect_err("rejected");
            assert!(
                error.contains("must not contain control characters"),
                "{bad}: {error}"
            );
            assert!(error.contains(found), "{bad}: {error}");
        }
    }

    #[test]
    fn all_faults_are_reported() {
        let error = parse_args(quote!(sampel = 1, name = x, name = "a", sample = 3))
            .err()
            .expect("rejected");
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("unknown profiled argument `sampel`"));
        assert!(messages[1].contains("string literal"));
        assert!(messages[2].contains("duplicate profiled argument `name`"));
        assert!(messages[3].contains("found `3`"));
    }

    #[test]
    fn method_arguments_win_over_the_block() {
        let block = parse_args(quote!(sample = 0.5, crate = my::profilis)).unwrap();
        let method = parse_args(quote!(name = "m", sample = 1))
            .unwrap()
            .over(&block);
        assert_eq!(method.name.as_ref().unwrap().value(), "m");
        assert_eq!(method.sample, Some(1.0));
        assert_eq!(method.krate.to_token_stream().to_string(), "my :: profilis");
        let plain = Args::default().over(&block);
        assert_eq!(plain.sample, Some(0.5));
        assert!(!plain.skip);
    }

    #[test]
    fn crate_is_a_keyword_key() {
        let args = parse_args(quote!(crate = crate::profilis, skip)).unwrap();
        assert!(args.skip);
        assert!(args.krate.is_some());
    }
}
