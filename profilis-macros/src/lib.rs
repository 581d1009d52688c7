//! The `#[profiled]` attribute of [profilis](https://docs.rs/profilis): times every call of a
//! function (or of every method of an impl block) and records whether it failed.
//!
//! Use it through the `profilis` crate (`use profilis::profiled;`), which re-exports it; the
//! code it generates refers to `::profilis::__private`, which is not a stable API.
//!
//! ```
//! use profilis::profiled;
//!
//! #[profiled]
//! fn price(qty: u32) -> Result<u32, String> {
//!     qty.checked_mul(250).ok_or_else(|| "overflow".to_string())
//! }
//!
//! #[profiled(name = "load_user", sample = 0.25)]
//! async fn load_user(id: u64) -> Option<String> {
//!     (id == 1).then(|| "ada".to_string())
//! }
//! # fn main() { assert_eq!(price(2), Ok(500)); }
//! ```
//!
//! # Arguments
//!
//! All optional, comma-separated, each at most once:
//!
//! | argument | meaning |
//! |---|---|
//! | `name = "label"` | The label of the function (the `function` label of the metrics, the `fn` key of events), used verbatim instead of the default path. Must be a non-empty string literal without control characters (`\n`, `\t`, `\0`, ...); quotes, backslashes and any other character are allowed and exported exactly. Not allowed on an impl block (every method would share it); put it on a method. |
//! | `sample = 0.25` | This function's own sample rate, a number literal in `0..=1` (`0`, `1`, `0.5`, `1.0`). Overrides the global rate (`PROFILIS_SAMPLE_RATE`) for this function. |
//! | `db = "postgres"` | The calls are database queries of this vendor: they are counted and timed in `profilis_db_queries_total` / `profilis_db_query_duration_seconds` (and failures in `profilis_db_query_errors_total`) under `db_vendor = "postgres"`, with every other query of that vendor, instead of as function calls, and they become DB events that also carry the function's name (`fn`). For clients that profilis has no hook for. A vendor name is lowercase letters, digits, `_` and `-`. On an impl block it applies to every method. |
//! | `crate = path` | Where the profilis crate is, for a renamed dependency (`crate = my_profilis`). Default `::profilis`. |
//! | `skip` | Leave the item alone. Meant for a method inside a `#[profiled]` impl block; on a free function it returns the function unchanged, on an impl block it leaves every method alone. |
//!
//! Faults are compile errors pointing at the argument at fault, all reported at once: an
//! unknown argument (`sampel`), one given twice, a `sample` that is not a number literal or
//! is outside `0..=1`, a `name` that is not a string literal or holds a control character, `#[profiled]` on a `const fn`,
//! on a function declaration without a body (a trait's method, a function of an `extern`
//! block) or on anything other than a function or an impl block. The item is then emitted
//! unchanged, so no errors follow from the attribute. An item that does not parse is passed
//! through untouched so that rustc reports your own syntax error.
//!
//! # Naming
//!
//! Without `name`, a function is labelled with its Rust path, built with `module_path!()`:
//!
//! - a free function `price` in module `shop::orders`: `shop::orders::price`;
//! - a method of an impl block carrying `#[profiled]`: `shop::orders::Order::total`, where
//!   `Order` is the last path segment of the implemented type (`impl<T> Order<T>` and
//!   `impl Display for Order` both give `Order`);
//! - a method carrying `#[profiled]` itself, in an impl block that does not: the macro cannot
//!   see the type, so it is `shop::orders::total`. Put the attribute on the impl block (and
//!   `#[profiled(skip)]` on the methods to leave out) to get the type in the name, or give a
//!   `name`.
//!
//! # Impl blocks
//!
//! On an impl block (inherent or trait impl) every method is instrumented, sync or async. A
//! method may carry its own `#[profiled(...)]`: its `name` and `sample` win over the block's,
//! its `crate` or else the block's is used, and `#[profiled(skip)]` leaves it alone. The
//! method attributes are removed. `const fn` methods and other items (constants, types,
//! macros) are left alone. The block knows a method's own attribute by its path, which must
//! end in `profiled` (`#[profiled]`, `#[profilis::profiled]`): one renamed with `use .. as`,
//! or inside `cfg_attr`, expands on its own afterwards onto a method the block has
//! instrumented already, and is a compile error ("already instrumented"), as two
//! `#[profiled]` on one function or impl block are, rather than record each call twice (or,
//! for a `skip`, be ignored).
//!
//! # Sampling
//!
//! Every call is counted, exactly; sampling only decides whether a call is timed and emits
//! an event. With `sample = 0.0` a function is still counted in `profilis_function_calls_total`
//! but never produces an event or a span.
//!
//! # Errors
//!
//! A call is an error when the function returns a [`Result`] that is `Err` (found at compile
//! time with autoref specialization: any `Result<T, E>`, including through a type alias;
//! other return types, including a generic `T` that happens to be a `Result`, never are), or
//! when it panics. A panic is recorded as an error with outcome `Panicked` and then goes on
//! unwinding unchanged: the macro does not catch it.
//!
//! # Sync functions
//!
//! The body runs inside a closure called once, right away, so that `return` and `?` in it
//! end the body, not the instrumentation, and its result can be inspected. Parameters are
//! moved into the closure, which can hand back borrows of them (`&mut self.field`). The
//! closure takes only the parameters (and fields of them) its body uses: those are dropped
//! when the body ends, inside the timed call, and the others when the function returns, after
//! it. So parameters whose `Drop` does something that must happen in a set order (guards,
//! transactions) may drop in another order than without the attribute: bind them in the body
//! (`let _tx = tx;`) to keep it. The
//! signature, visibility and attributes (`#[must_use]`, `#[inline]`, doc comments, ...) are
//! kept as written, so the function's API and documentation do not change. One `static`
//! call site is made per function, shared by all its instances (generic functions
//! included). A function returning `!` is timed until it panics (a call that loops forever
//! or exits the process is never recorded).
//!
//! Because the body is a closure, `Location::caller()` inside a `#[track_caller]` function
//! body sees the body, not the caller.
//!
//! A function returning an `impl Trait` that is not a future (`-> impl Fn(&u32) -> bool`,
//! `-> impl Iterator<Item = u8>`) keeps its body inline instead, as the function's own tail:
//! a closure it returns is checked against the signature as without the attribute (inside
//! another closure it would lose it: `|x| x % 2 == 0` would not be general over `&u32`). Such
//! a result cannot be read for an error, so those calls fail only by panicking; `return` and
//! `?` end the call as the body does. (An `async fn` returning `impl Fn(&T) -> R` has no such
//! way: give the closure's argument its type, `|x: &u32| ..`.)
//!
//! # Async functions
//!
//! An `async fn` keeps its signature; its body becomes a future wrapped with
//! `instrument(...)`. The call is timed from the first poll of that future to its completion,
//! so time spent between creating the future and awaiting it is not counted, while time
//! spent waiting inside it (I/O, timers, other tasks) is. While polled, the call is the
//! current span, so profiled calls it makes, across `.await` and on any runtime or thread,
//! are its children (same trace id, parent span id = its span id).
//!
//! An `async fn` that never returns (`-> !`) is timed until it panics or its future is
//! dropped. A plain function whose body ends with the future it returns, `async ..` or
//! `Box::pin(async ..)` (`fn run(&self) -> impl Future<Output = u32> + Send { let id = self.id;
//! async move { .. } }`, as in traits whose futures must be `Send`), is timed the same way,
//! from the future's first poll (an async block gets the `Output` an `impl Future<Output = ..>`
//! or `Pin<Box<dyn Future<Output = ..>>>` signature names, as it would be inferred without
//! the attribute). So is a function returning `Pin<Box<dyn Future<..> ..>>` written out
//! (not through an alias such as `BoxFuture`, whose meaning the macro cannot read, nor with
//! an `impl Trait` inside) whose body is more than `Box::pin(async ..)` (`Box::pin(work(id))`,
//! `async { .. }.boxed()`, branches, statements and early `return`s before the tail): its
//! whole body runs, untimed, when it is called, in a closure of its return type, and the
//! future it makes, whichever `return` gave it, is wrapped and boxed once more (one
//! allocation). A
//! function returning `impl Future` made by a call (`work(id)`) is timed as the making of the
//! future only: the future's type cannot be named, so it is left as it is (its body stays
//! inline, as for any other `impl Trait`). The statements before an async block tail run
//! untimed when the future is made. If those statements end the call instead, by an early `return` (of a future that
//! is not wrapped) or a panic, the call is recorded as ending there: counted, failed if it
//! panicked, without a duration of its own. Such a function (unlike an `async fn`, whose
//! body starts at the first poll) has been called once it returns its future: a future of it
//! dropped without being polled is recorded as a call cancelled at once.
//!
//! A future dropped after its first poll but before it completes (cancelled by `select!`, a
//! timeout, an aborted task) is recorded once with outcome `Cancelled`; it is not an error. An
//! `async fn` future dropped without ever being polled never started its body and records
//! nothing. A future that panics while polled is recorded as an error with outcome
//! `Panicked`. The instrumented future is `Send` whenever the original one is.
//!
//! # `async_trait`
//!
//! Both orders work with `#[async_trait]` (the `async-trait` crate):
//!
//! - `#[async_trait]` above `#[profiled]` (on the impl block or on a method): `async_trait`
//!   runs first and turns each `async fn` into a function whose body is
//!   `Box::pin(async move { .. })`. A body of that shape is recognised and the async
//!   block is instrumented, so the real async work is timed, not the boxing (see above for
//!   hand-written ones).
//! - `#[profiled]` above `#[async_trait]`: the `async fn`s are instrumented as above, then
//!   `async_trait` boxes them.
//!
//! # Generated code and lints
//!
//! Generated locals are named `__profilis_*` and are hygienic, so they neither see nor shadow
//! yours (the one item, the `static __PROFILIS_SITE` each function gets, is seen by its body
//! like any item: do not name one of yours so). The body is kept token for token, so type
//! errors point at your code as they would without the attribute, and rustc's lints of the
//! body's own code do too; the only lint attribute added is an `#[allow(unused_imports)]` on
//! the macro's own `use` of the error-detection traits. Lints about the function as a whole
//! may not see it the same: a body run inside a closure is not one clippy's
//! `needless_return`, `unused_async` or `missing_const_for_fn` look at, and an unused private
//! profiled function is not reported by `dead_code`.
//!
//! # The `enabled` feature
//!
//! On by default (through `profilis`'s own `enabled` feature). Off, `#[profiled]` still parses
//! and checks its arguments and the item, reporting the same errors, removes `#[profiled]`
//! attributes from the methods of an impl block, and otherwise leaves the item exactly as
//! written: the instrumentation compiles out entirely.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

mod attr;
#[cfg(feature = "enabled")]
mod expand;

/// Times every call of a function, or of every method of an impl block; see the
/// [`profilis-macros` crate documentation](https://docs.rs/profilis-macros) for the arguments
/// and semantics.
///
/// ```
/// # use profilis::profiled;
/// struct Cart {
///     items: Vec<u32>,
/// }
///
/// #[profiled(sample = 0.5)]
/// impl Cart {
///     fn total(&self) -> u32 {
///         self.items.iter().sum()
///     }
///
///     #[profiled(name = "cart_add", sample = 1.0)]
///     fn add(&mut self, price: u32) -> &mut Self {
///         self.items.push(price);
///         self
///     }
///
///     #[profiled(skip)]
///     fn len(&self) -> usize {
///         self.items.len()
///     }
/// }
/// # fn main() {
/// # let mut cart = Cart { items: vec![] };
/// # assert_eq!(cart.add(2).add(3).total(), 5);
/// # assert_eq!(cart.len(), 2);
/// # }
/// ```
#[proc_macro_attribute]
pub fn profiled(args: TokenStream, item: TokenStream) -> TokenStream {
    profiled2(args.into(), item.into()).into()
}

fn profiled2(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let args = attr::parse_args(args);
    let Ok(parsed) = syn::parse2::<syn::Item>(item.clone()) else {
        // Not an item we can read: hand it back untouched so rustc reports the user's own
        // syntax error, with ours (if any) beside it.
        return match args {
            Ok(_) => item,
            Err(errors) => with_errors(errors, item),
        };
    };
    let outer = args.as_ref().cloned().unwrap_or_default();
    let (plain, target) = attr::check_item(parsed, &outer);
    match (args, target) {
        (Ok(args), Ok(target)) => expand_checked(&args, target),
        (Err(mut errors), Err(more)) => {
            errors.combine(more);
            with_errors(errors, plain)
        }
        (Err(errors), _) | (_, Err(errors)) => with_errors(errors, plain),
    }
}

#[cfg(feature = "enabled")]
fn expand_checked(args: &attr::Args, target: attr::Target) -> TokenStream2 {
    expand::expand(args, target)
}

#[cfg(not(feature = "enabled"))]
fn expand_checked(_args: &attr::Args, target: attr::Target) -> TokenStream2 {
    target.into_plain()
}

/// The item as written, after the errors: the errors are all the user sees.
fn with_errors(errors: syn::Error, item: TokenStream2) -> TokenStream2 {
    let errors = errors.to_compile_error();
    quote::quote!(#errors #item)
}
