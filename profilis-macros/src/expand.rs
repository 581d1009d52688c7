//! Code generation: rewrites the body of each instrumented function so that every call is
//! timed through `<crate>::__private` (see `profilis-core`'s `call` module). Signatures,
//! attributes and visibility are never touched.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Block, Expr, GenericArgument, ImplItem, LitStr, PathArguments, ReturnType, Signature, Stmt,
    Token, Type, TypeParamBound,
};

use crate::attr::{Args, Target};

/// Instruments a checked item.
pub(crate) fn expand(args: &Args, target: Target) -> TokenStream {
    match target {
        Target::Fn(mut f) => {
            if args.skip {
                return f.into_token_stream();
            }
            let site = SiteSpec::new(args, None, &f.sig);
            f.block = Box::new(instrument_body(&site, &f.sig, *f.block));
            f.into_token_stream()
        }
        Target::Impl(mut imp, plan) => {
            let type_name = self_type_name(&imp.self_ty);
            for (item, args) in imp.items.iter_mut().zip(plan) {
                if let (ImplItem::Fn(method), Some(args)) = (item, args) {
                    let site = SiteSpec::new(&args, type_name.as_deref(), &method.sig);
                    let block = std::mem::replace(&mut method.block, empty_block());
                    method.block = instrument_body(&site, &method.sig, block);
                }
            }
            imp.into_token_stream()
        }
    }
}

fn empty_block() -> Block {
    Block {
        brace_token: Default::default(),
        stmts: Vec::new(),
    }
}

/// What the `static` call site of one function is made of.
struct SiteSpec {
    /// A `&'static str` expression: the label.
    name: TokenStream,
    /// An `Option<f64>` expression: the site's own sample rate.
    sample: TokenStream,
    /// The path of the profilis crate.
    krate: TokenStream,
    /// `db = "..."`: the vendor whose queries the calls are.
    db: Option<LitStr>,
}

impl SiteSpec {
    fn new(args: &Args, type_name: Option<&str>, sig: &Signature) -> SiteSpec {
        let name = match &args.name {
            Some(name) => name.to_token_stream(),
            None => {
                let method = sig.ident.unraw().to_string();
                let suffix = match type_name {
                    Some(ty) => format!("::{ty}::{method}"),
                    None => format!("::{method}"),
                };
                let suffix = LitStr::new(&suffix, Span::call_site());
                quote!(::core::concat!(::core::module_path!(), #suffix))
            }
        };
        let sample = match args.sample {
            Some(rate) => {
                let rate = proc_macro2::Literal::f64_suffixed(rate);
                quote!(::core::option::Option::Some(#rate))
            }
            None => quote!(::core::option::Option::None),
        };
        SiteSpec {
            name,
            sample,
            krate: args.crate_path(),
            db: args.db.clone(),
        }
    }

    /// The `static` item every instrumented function gets.
    fn static_item(&self) -> TokenStream {
        let SiteSpec {
            name,
            sample,
            krate,
            db,
        } = self;
        match db {
            Some(vendor) => quote! {
                static __PROFILIS_SITE: #krate::__private::Site =
                    #krate::__private::Site::db_function(#name, #vendor, #sample);
            },
            None => quote! {
                static __PROFILIS_SITE: #krate::__private::Site =
                    #krate::__private::Site::function(#name, #sample);
            },
        }
    }

    /// The classifier handed to `instrument`: whether the future's output is an `Err`, and
    /// its type and message.
    fn classify(&self) -> TokenStream {
        let out = local("__profilis_out");
        let failed = self.failed(quote!(#out));
        quote!(|#out| #failed)
    }

    /// `Some` (the error's type, and its message if it is `Display`) when `value` (a reference
    /// to the result) is an `Err`.
    fn failed(&self, value: TokenStream) -> TokenStream {
        let krate = &self.krate;
        quote! {{
            #[allow(unused_imports)]
            use #krate::__private::{
                FailedDisplay as _, FailedOther as _, FailedResult as _,
            };
            (&&#krate::__private::Probe(#value)).__profilis_failed()
        }}
    }
}

/// Whether `ty` is `!`, also as `(!)` or through a `macro_rules!` fragment (`$r:ty`).
fn is_never(ty: &Type) -> bool {
    match ty {
        Type::Never(_) => true,
        Type::Group(group) => is_never(&group.elem),
        Type::Paren(paren) => is_never(&paren.elem),
        _ => false,
    }
}

/// A generated local: hygienic, so it can neither capture nor shadow the user's names.
fn local(name: &str) -> syn::Ident {
    syn::Ident::new(name, Span::mixed_site())
}

/// The new body of an instrumented function.
fn instrument_body(site: &SiteSpec, sig: &Signature, block: Block) -> Block {
    let tokens = if sig.asyncness.is_some() {
        async_body(site, &sig.output, block)
    } else {
        let future = match &sig.output {
            ReturnType::Type(_, ty) => future_return(ty),
            ReturnType::Default => None,
        };
        match boxed_async_body(site, future.as_ref(), block) {
            Ok(tokens) => tokens,
            Err(block) => match &sig.output {
                ReturnType::Type(_, ty) if is_impl_trait(ty) => opaque_body(site, block),
                output => sync_body(site, output, block),
            },
        }
    };
    syn::parse2(quote!({ #tokens })).expect("generated body parses")
}

/// A function returning an `impl Trait` that is not a future: its result cannot be read for an
/// error, so the body stays inline, the function's own tail (a closure in a body wrapped in
/// another closure loses the signature it is checked against: `-> impl Fn(&u32) -> bool`).
/// The call ends as the body is left, by `ExitOnDrop`; a panic leaves it to the guard.
fn opaque_body(site: &SiteSpec, block: Block) -> TokenStream {
    let krate = &site.krate;
    let static_item = site.static_item();
    let guard = local("__profilis_guard");
    let exit = local("__profilis_exit");
    let stmts = &block.stmts;
    quote! {
        #static_item
        let mut #guard = #krate::__private::CallGuard::new();
        #guard.start(&__PROFILIS_SITE);
        let #exit = #krate::__private::ExitOnDrop::new(&mut #guard);
        #(#stmts)*
    }
}

fn sync_body(site: &SiteSpec, output: &ReturnType, block: Block) -> TokenStream {
    let krate = &site.krate;
    let static_item = site.static_item();
    let guard = local("__profilis_guard");
    let ret = local("__profilis_ret");
    let enter = quote! {
        #static_item
        let mut #guard = #krate::__private::CallGuard::new();
        #guard.start(&__PROFILIS_SITE);
    };
    match output {
        // Nothing to inspect: the call can only fail by panicking. The closure's `-> ()` keeps
        // a diverging body from making the exit unreachable (never-type fallback).
        ReturnType::Default => quote! {
            #enter
            #krate::__private::call_once(move || -> () #block);
            #guard.exit_with(::core::option::Option::None);
        },
        // A call that never returns can only end by panicking, which the guard records as it
        // drops; `!` cannot name a local's type on stable Rust, so the body stays inline.
        // The body's statements, not its block: braces around the tail would be linted
        // (`unused_braces`).
        ReturnType::Type(_, ty) if is_never(ty) => {
            let stmts = &block.stmts;
            quote! {
                #static_item
                let #guard = #krate::__private::enter(&__PROFILIS_SITE);
                #(#stmts)*
            }
        }
        ReturnType::Type(_, ty) => {
            let failed = site.failed(quote!(&#ret));
            // The closure's own return type is the function's, so the body's tail and its
            // `return`s are coerced to it exactly as before (unsizing, `?` conversions).
            let output = infer_impl_trait(ty).map(|ty| quote!(-> #ty));
            quote! {
                #enter
                let #ret = #krate::__private::call_once(move || #output #block);
                #guard.exit_with(#failed);
                #ret
            }
        }
    }
}

/// A first, never-taken `return` of type `ty` for an async block. An async block has no
/// return type to write down: this fixes it before the body is checked, so the body's
/// `return`s and `?` are coerced and converted to that type exactly as in the original
/// function (and the probes of its output see its type).
fn fix_output(ty: &Type) -> TokenStream {
    // Spanned at the return type, which type errors then point at.
    let span = ty.span();
    let ret = syn::Ident::new("__profilis_ret", span.resolved_at(Span::mixed_site()));
    quote_spanned! {span=>
        if let ::core::option::Option::Some(#ret) = ::core::option::Option::None::<#ty> {
            return #ret;
        }
    }
}

fn async_body(site: &SiteSpec, output: &ReturnType, block: Block) -> TokenStream {
    let krate = &site.krate;
    let static_item = site.static_item();
    let classify = site.classify();
    // `!` cannot be named there: the future of a function that never returns yields the
    // uninhabited `Never`, matched away after the `.await`.
    let never = matches!(output, ReturnType::Type(_, ty) if is_never(ty));
    let fix_output = match output {
        ReturnType::Type(_, ty) if never => Some(fix_output(
            &syn::parse_quote_spanned!(ty.span()=> #krate::__private::Never),
        )),
        ReturnType::Type(_, ty) => infer_impl_trait(ty).map(|ty| fix_output(&ty)),
        ReturnType::Default => Some(fix_output(&syn::parse_quote!(()))),
    };
    // The body's statements, not its block: `{ 4 }` as the async block's value would be
    // linted as braces around a value (`unused_braces`), an error under `deny(warnings)`.
    let stmts = &block.stmts;
    let call = quote! {
        #krate::__private::instrument(
            &__PROFILIS_SITE,
            async move {
                #fix_output
                #(#stmts)*
            },
            #classify,
        )
        .await
    };
    if never {
        quote! {
            #static_item
            match #call {}
        }
    } else {
        quote! {
            #static_item
            #call
        }
    }
}

/// A body that makes a future and returns it: its tail is an async block, `async ..`, or
/// one boxed as `async_trait` does, `Box::pin(async ..)`. The async block is wrapped in place
/// so the call is timed from its first poll to completion, not just the making of the future
/// (and gets the `Output` the signature names, `future`, which it may not infer by itself);
/// statements before it (cloning what the block needs) run when the future is made, untimed,
/// under a `__private::Handover` that records the call if they end it instead (an early
/// `return`, which hands back a future not wrapped, or a panic). A body returning a nameable
/// `Pin<Box<dyn Future ..>>` that is more than `Box::pin(async ..)` is [`boxed_body`]'s. Any
/// other body comes back unchanged as `Err`.
fn boxed_async_body(
    site: &SiteSpec,
    future: Option<&FutureReturn>,
    mut block: Block,
) -> Result<TokenStream, Block> {
    let krate = &site.krate;
    let classify = site.classify();
    let output = future
        .and_then(|future| future.output.as_ref())
        .and_then(infer_impl_trait);
    // A boxed future made otherwise than by the async block alone (an early `return` before
    // it, say): the whole body runs in a closure, so every future it can return is wrapped.
    if let Some(FutureReturn {
        boxed: Some(ty), ..
    }) = future
    {
        if block.stmts.len() > 1 || tail_async_block(&mut block).is_none() {
            return Ok(boxed_body(site, ty, block));
        }
    }
    let Some(async_block) = tail_async_block(&mut block) else {
        return Err(block);
    };
    if let (Expr::Async(inner), Some(output)) = (&mut *async_block, &output) {
        let fix = fix_output(output);
        inner.block.stmts.insert(0, syn::parse_quote!(#fix));
    }
    let inner = std::mem::replace(async_block, Expr::Verbatim(TokenStream::new()));
    *async_block = syn::parse_quote! {
        #krate::__private::instrument(&__PROFILIS_SITE, #inner, #classify)
    };
    let static_item = site.static_item();
    let (tail, before) = block.stmts.split_last().expect("a body with a tail");
    if before.is_empty() {
        // Nothing can end the call before its future is made (`async_trait`'s shape).
        return Ok(quote! {
            #static_item
            #tail
        });
    }
    let handover = local("__profilis_handover");
    Ok(quote! {
        #static_item
        let #handover = #krate::__private::Handover::new(&__PROFILIS_SITE);
        #(#before)*
        #handover.done();
        #tail
    })
}

/// A function returning `Pin<Box<dyn Future ..>>` (`ty`) whose body makes it some other way
/// than with an async block in its tail (`Box::pin(work())`, `if .. { Box::pin(a()) } else
/// { .. }`, an early `return`): the whole body runs when the function is called, in a closure
/// of the function's return type (so every `return` and branch is coerced to it as before),
/// under a `Handover` that records the call if it panics; the future it makes is then wrapped
/// and boxed again, so the call is timed as the future's work, with its error.
fn boxed_body(site: &SiteSpec, ty: &Type, block: Block) -> TokenStream {
    let krate = &site.krate;
    let classify = site.classify();
    let static_item = site.static_item();
    let handover = local("__profilis_handover");
    let future = local("__profilis_future");
    quote! {
        #static_item
        let #handover = #krate::__private::Handover::new(&__PROFILIS_SITE);
        let #future = #krate::__private::call_once(move || -> #ty #block);
        #handover.done();
        ::std::boxed::Box::pin(#krate::__private::instrument(
            &__PROFILIS_SITE,
            #future,
            #classify,
        ))
    }
}

/// The async block a body ends with (`async ..` or `Box::pin(async ..)`), as an expression
/// slot to replace.
fn tail_async_block(block: &mut Block) -> Option<&mut Expr> {
    let Some(Stmt::Expr(tail, None)) = block.stmts.last_mut() else {
        return None;
    };
    if matches!(tail, Expr::Async(_)) {
        return Some(tail);
    }
    let argument = box_pin_argument(tail)?;
    matches!(argument, Expr::Async(_)).then_some(argument)
}

/// The one argument of `expr` if it is a call of `Box::pin` (by any path ending so).
fn box_pin_argument(expr: &mut Expr) -> Option<&mut Expr> {
    let Expr::Call(call) = expr else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let segments = &func.path.segments;
    let is_box_pin = segments.len() >= 2
        && segments[segments.len() - 1].ident == "pin"
        && segments[segments.len() - 2].ident == "Box";
    if !is_box_pin || call.args.len() != 1 {
        return None;
    }
    call.args.first_mut()
}

/// What a plain function's return type says of the future it returns.
struct FutureReturn {
    /// For `Pin<Box<dyn Future ..>>`: that type (it has no `impl Trait` in it), which a body
    /// that is not an async block can be made to return ([`boxed_body`]).
    boxed: Option<Type>,
    /// The future's `Output`, when the type names it.
    output: Option<Type>,
}

/// The future `ty` names: `impl Future<Output = T>` (with at most `Send`, `Sync`, `Unpin`
/// and lifetimes beside it, which a wrapped future keeps) or `Pin<Box<dyn Future<Output = T>
/// ..>>`. Not an alias (`BoxFuture<..>`): what it stands for cannot be read here (tonic's
/// `BoxFuture<T, E>` is a future of `Result<T, E>`).
fn future_return(ty: &Type) -> Option<FutureReturn> {
    match ty {
        Type::Group(group) => future_return(&group.elem),
        Type::Paren(paren) => future_return(&paren.elem),
        Type::ImplTrait(impl_trait) => {
            let kept = impl_trait.bounds.iter().all(|bound| match bound {
                TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|last| {
                    ["Future", "Send", "Sync", "Unpin"]
                        .iter()
                        .any(|name| last.ident == name)
                }),
                TypeParamBound::Lifetime(_) => true,
                _ => false,
            });
            if !kept {
                return None;
            }
            future_bound(&impl_trait.bounds).map(|output| FutureReturn {
                boxed: None,
                output,
            })
        }
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            let Some(GenericArgument::Type(Type::Path(boxed))) = args.args.first() else {
                return None;
            };
            if last.ident != "Pin" || args.args.len() != 1 {
                return None;
            }
            let boxed_last = boxed.path.segments.last()?;
            let PathArguments::AngleBracketed(args) = &boxed_last.arguments else {
                return None;
            };
            let Some(GenericArgument::Type(Type::TraitObject(object))) = args.args.first() else {
                return None;
            };
            if boxed_last.ident != "Box" || args.args.len() != 1 {
                return None;
            }
            // A type with an `impl Trait` in it (`Output = impl Display`) cannot be a
            // closure's return type.
            let nameable = !has_impl_trait(ty);
            future_bound(&object.bounds).map(|output| FutureReturn {
                boxed: nameable.then(|| ty.clone()),
                output,
            })
        }
        _ => None,
    }
}

/// `Some(output)` when `bounds` have a `Future` bound; `output` is its `Output = ..`, if named.
fn future_bound(bounds: &Punctuated<TypeParamBound, Token![+]>) -> Option<Option<Type>> {
    bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let last = t.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return Some(None);
        };
        Some(args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(assoc.ty.clone()),
            _ => None,
        }))
    })
}

/// Whether `ty` is an `impl Trait` itself.
fn is_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Group(group) => is_impl_trait(&group.elem),
        Type::Paren(paren) => is_impl_trait(&paren.elem),
        _ => false,
    }
}

/// The return type `ty` with each `impl Trait` in it replaced by `_`, so it can be written
/// inside the body; `None` when `ty` is an `impl Trait` itself (nothing left to say).
fn infer_impl_trait(ty: &Type) -> Option<Type> {
    if matches!(ty, Type::ImplTrait(_)) {
        return None;
    }
    let mut ty = ty.clone();
    ReplaceImplTrait::default().visit_type_mut(&mut ty);
    Some(ty)
}

/// Whether `ty` has an `impl Trait` anywhere in it.
fn has_impl_trait(ty: &Type) -> bool {
    let mut replace = ReplaceImplTrait::default();
    replace.visit_type_mut(&mut ty.clone());
    replace.replaced
}

/// Replaces each `impl Trait` it visits by `_`.
#[derive(Default)]
struct ReplaceImplTrait {
    /// Whether it replaced any.
    replaced: bool,
}

impl VisitMut for ReplaceImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            self.replaced = true;
            let underscore = syn::Token![_](impl_trait.span());
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: underscore,
            });
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// The name a method of an impl block is labelled with: the last segment of the self type
/// (`impl<T> Cache<T>` and `impl Display for Cache` are both `Cache`).
fn self_type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.unraw().to_string()),
        Type::Reference(r) => self_type_name(&r.elem),
        Type::Ptr(p) => self_type_name(&p.elem),
        Type::Paren(p) => self_type_name(&p.elem),
        Type::Group(g) => self_type_name(&g.elem),
        Type::TraitObject(object) => object.bounds.iter().find_map(|bound| match bound {
            syn::TypeParamBound::Trait(t) => t
                .path
                .segments
                .last()
                .map(|segment| segment.ident.unraw().to_string()),
            _ => None,
        }),
        _ => None,
    }
}
