//! The `#[task]` and `#[actor]` attributes of rdask (`#[actor]`'s
//! expansion is in `actor.rs`).
//!
//! `#[task]` turns a plain function into a unit struct of the same name that
//! implements `rdask::task::Task` and registers itself (through `inventory`)
//! under `module_path!()::name`, so any binary linking it can run it as a
//! worker. The struct derefs to a function pointer, so `name(a, b)` still
//! calls the function directly.
//!
//! Rust cannot ship closures, so the worker finds the function by name and
//! calls it through `Task::call_encoded`, which decodes each msgpack argument
//! as the declared parameter type. That is why only concrete parameter
//! types are accepted: no generics, references, `impl Trait` or `self`. A
//! type with a lifetime (`ChunkView<'_>`) borrows from the argument's bytes
//! for the call (no copy of a large value); it names the owned type it reads
//! through `rdask::task::BorrowedArg`, which is what clients pass.
//!
//! All runtime paths go through the `crate` argument (default `::rdask`), so
//! the same macro works for user crates and for rdask's own built-ins
//! (`#[task(crate = "crate")]`).

#![warn(missing_docs)]

mod actor;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ItemFn, Pat, Path, ReturnType, Type};

/// Most parameters a task may take; kept in step with the client's typed
/// submission helpers, which are implemented per arity.
const MAX_PARAMS: usize = 8;

/// Makes a free function an rdask task.
///
/// ```ignore
/// /// Adds two numbers.
/// #[rdask::task]
/// pub fn add(a: i64, b: i64) -> i64 { a + b }
///
/// assert_eq!(add(1, 2), 3); // still callable directly
/// // and `add` (a unit struct) implements `rdask::task::Task`,
/// // registered as "my_crate::my_module::add".
/// ```
///
/// A return type whose last path segment is `Result` (`Result<T, E>`,
/// `io::Result<T>`, `anyhow::Result<T>`) must implement
/// `rdask::task::TaskReturn`: the task's output is `T` and an `Err` fails the
/// task with the error's `Display`. Any other return type is the output
/// itself and only needs serde's `Serialize + DeserializeOwned`.
///
/// Arguments: `crate = "path"` names the rdask crate (default `::rdask`).
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Makes a type an rdask actor: put it on the type's `impl` block.
///
/// ```ignore
/// pub struct Counter { n: i64 }
///
/// #[rdask::actor]
/// impl Counter {
///     pub fn new(start: i64) -> Counter { Counter { n: start } }
///     pub fn increment(&mut self, by: i64) -> i64 { self.n += by; self.n }
/// }
///
/// let counter = client.submit_actor::<Counter>((0,))?;
/// assert_eq!(counter.increment(1).result()?, 1);
/// ```
///
/// The block needs a constructor `fn new(...) -> Self` (or
/// `-> Result<Self, E>`, whose `Err` fails the creation). Its `pub` methods
/// taking `&self` or `&mut self` become the actor's methods: a generated
/// `<Type>Proxy` (which `rdask::Actor<Type>` derefs to) has one method per
/// actor method, taking the same parameters and returning an
/// `rdask::ActorCall` of its output (the `Ok` type for a method returning
/// `Result`, whose `Err` fails the call). Parameters follow `#[task]`'s
/// rules. The type is registered as `module_path!()::Type`, and its
/// constructor task as `actor:module_path!()::Type`.
///
/// Arguments: `crate = "path"` names the rdask crate (default `::rdask`).
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    match actor::expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Parsed `#[task(...)]` arguments.
struct Args {
    krate: Path,
}

fn parse_args(attr: TokenStream2) -> syn::Result<Args> {
    let mut krate: Path = syn::parse_quote!(::rdask);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let value = meta.value()?;
            // Accept both `crate = "::rdask"` (the serde convention) and a
            // bare path `crate = ::rdask`.
            krate = if value.peek(syn::LitStr) {
                value.parse::<syn::LitStr>()?.parse()?
            } else {
                value.parse()?
            };
            Ok(())
        } else {
            Err(meta.error("unsupported #[task] argument; expected `crate = \"path\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(Args { krate })
}

/// One accepted parameter: its name (for error messages) and type.
struct Param {
    name: String,
    ty: Type,
}

fn check_signature(func: &ItemFn) -> syn::Result<Vec<Param>> {
    let sig = &func.sig;
    let fail = |span: Span, what: &str| {
        Err(syn::Error::new(
            span,
            format!("#[task] functions cannot be {what}: the worker calls them by name through a plain `fn` pointer"),
        ))
    };
    if let Some(a) = &sig.asyncness {
        return fail(a.span(), "async");
    }
    if let Some(u) = &sig.unsafety {
        return fail(u.span(), "unsafe");
    }
    if let Some(abi) = &sig.abi {
        return fail(abi.span(), "extern");
    }
    if let Some(v) = &sig.variadic {
        return fail(v.span(), "variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[task] functions cannot be generic: each argument is decoded as one concrete type",
        ));
    }
    if sig.inputs.len() > MAX_PARAMS {
        return Err(syn::Error::new(
            sig.inputs.span(),
            format!(
                "#[task] functions take at most {MAX_PARAMS} parameters (this one takes {}); group them in a struct",
                sig.inputs.len()
            ),
        ));
    }
    let mut params = Vec::with_capacity(sig.inputs.len());
    for input in &sig.inputs {
        let pt = match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "#[task] must be on a free function, not a method taking `self`",
                ))
            }
            FnArg::Typed(pt) => pt,
        };
        let name = match &*pt.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.to_string(),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "#[task] parameters must be simple `name: Type` bindings (no patterns)",
                ))
            }
        };
        check_type(&pt.ty)?;
        params.push(Param {
            name,
            ty: (*pt.ty).clone(),
        });
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Type::ImplTrait(_) = &**ty {
            return Err(syn::Error::new(
                ty.span(),
                "#[task] functions cannot return `impl Trait`: the output type must be named",
            ));
        }
    }
    Ok(params)
}

/// Rejects parameter types that cannot be decoded into an owned value.
fn check_type(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(r) => Err(syn::Error::new(
            r.span(),
            "#[task] parameters must be owned types (e.g. `String`, `Vec<u8>`), not references: arguments are decoded from bytes",
        )),
        Type::ImplTrait(t) => Err(syn::Error::new(
            t.span(),
            "#[task] parameters cannot be `impl Trait`: each argument is decoded as one concrete type",
        )),
        Type::Paren(p) => check_type(&p.elem),
        Type::Group(g) => check_type(&g.elem),
        _ => Ok(()),
    }
}

/// Whether the return type is spelled `...::Result<...>`, in which case the
/// task's output is the Ok type (through `TaskReturn`). A syntactic check,
/// because a blanket "any serde type" impl would overlap with the `Result`
/// impl.
fn returns_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|seg| seg.ident == "Result"),
        Type::Paren(p) => returns_result(&p.elem),
        Type::Group(g) => returns_result(&g.elem),
        _ => false,
    }
}

/// The type as written, for error messages: `stringify!` on macro tokens
/// spaces every token (`Vec < i64 >`), so squeeze the spaces that are not
/// between two words or after a `,` / `;`.
fn type_name(ty: &Type) -> String {
    let spaced = quote!(#ty).to_string();
    let chars: Vec<char> = spaced.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let mut out = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last().unwrap_or(' ');
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            if !((word(prev) && word(next)) || prev == ',' || prev == ';') {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The type a client passes for a parameter of type `ty`: `ty` itself, or
/// for a type that borrows from the argument's bytes (it has a lifetime)
/// the owned type it reads, `<Ty<'static> as BorrowedArg>::Owned`.
fn client_type(ty: &Type, krate: &Path) -> TokenStream2 {
    /// Makes every lifetime `'static`, noting whether there was one.
    struct StaticLifetimes(bool);
    impl syn::visit_mut::VisitMut for StaticLifetimes {
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            self.0 = true;
            *l = syn::Lifetime::new("'static", l.span());
        }
    }
    let mut stat = ty.clone();
    let mut visitor = StaticLifetimes(false);
    syn::visit_mut::VisitMut::visit_type_mut(&mut visitor, &mut stat);
    if visitor.0 {
        quote!(<#stat as #krate::task::BorrowedArg>::Owned)
    } else {
        quote!(#ty)
    }
}

fn is_attr(attr: &Attribute, name: &str) -> bool {
    attr.path().is_ident(name)
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let Args { krate } = parse_args(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let params = check_signature(&func)?;

    let vis = &func.vis;
    let name = &func.sig.ident;
    let body = &func.block;
    let inputs = &func.sig.inputs;
    let output = &func.sig.output;

    // Docs and deprecation describe the task, so they go on the struct users
    // see; `cfg` must gate every generated item; everything else (`inline`,
    // lint levels, `must_use`, ...) belongs to the function body.
    let mut struct_attrs = Vec::new();
    let mut cfg_attrs = Vec::new();
    let mut fn_attrs = Vec::new();
    for a in &func.attrs {
        if is_attr(a, "doc") || is_attr(a, "deprecated") {
            struct_attrs.push(a);
        } else if is_attr(a, "cfg") {
            cfg_attrs.push(a);
        } else {
            fn_attrs.push(a);
        }
    }

    let tys: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    let arg_tys: Vec<TokenStream2> = tys.iter().map(|ty| client_type(ty, &krate)).collect();
    let n = params.len();
    let ret_ty: Type = match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let fn_ptr_ty = quote!(fn(#(#tys),*) #output);

    let locals: Vec<_> = (0..n).map(|i| format_ident!("__rdask_arg{}", i)).collect();
    let decodes = params.iter().enumerate().map(|(i, p)| {
        let local = &locals[i];
        let ty = &p.ty;
        let pname = &p.name;
        let tname = type_name(ty);
        quote! {
            let #local: #ty = #krate::task::__private::decode_arg::<#ty>(
                <Self as #krate::task::Task>::NAME, #i, #pname, #tname, args[#i],
            )?;
        }
    });

    let (output_ty, convert) = if returns_result(&ret_ty) {
        (
            quote!(<#ret_ty as #krate::task::TaskReturn>::Output),
            quote!(let __rdask_out = #krate::task::__private::into_output(__rdask_out)?;),
        )
    } else {
        (quote!(#ret_ty), quote!())
    };

    Ok(quote! {
        #(#cfg_attrs)*
        #(#struct_attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        #(#cfg_attrs)*
        impl #name {
            /// The original function.
            #[doc(hidden)]
            #(#fn_attrs)*
            #vis fn __rdask_call(#inputs) #output #body

            /// Decodes the arguments, calls the function and encodes its
            /// output with `encode` (into memory, or a memory file).
            #[doc(hidden)]
            #[allow(clippy::type_complexity)]
            fn __rdask_run<R>(
                args: &[&[u8]],
                encode: impl ::core::ops::FnOnce(&str, &#output_ty) -> ::core::result::Result<R, #krate::task::TaskFailure>,
            ) -> ::core::result::Result<R, #krate::task::TaskFailure> {
                #krate::task::__private::check_arity(<Self as #krate::task::Task>::NAME, #n, args)?;
                #(#decodes)*
                let __rdask_out = #name::__rdask_call(#(#locals),*);
                #convert
                encode(<Self as #krate::task::Task>::NAME, &__rdask_out)
            }
        }

        // Lets `name(a, b)` call the function like before: call expressions
        // auto-deref the callee.
        #(#cfg_attrs)*
        #[allow(clippy::type_complexity)]
        impl ::core::ops::Deref for #name {
            type Target = #fn_ptr_ty;
            fn deref(&self) -> &Self::Target {
                const F: #fn_ptr_ty = #name::__rdask_call;
                &F
            }
        }

        #(#cfg_attrs)*
        #[allow(clippy::type_complexity)]
        impl #krate::task::Task for #name {
            const NAME: &'static str =
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name));
            type Args = (#(#arg_tys,)*);
            type Output = #output_ty;
            fn call_encoded(
                args: &[&[u8]],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::task::TaskFailure> {
                #name::__rdask_run(args, #krate::task::__private::encode_output::<#output_ty>)
            }
            fn call_shared(
                args: &[&[u8]],
            ) -> ::core::result::Result<#krate::task::__private::Bytes, #krate::task::TaskFailure> {
                #name::__rdask_run(args, #krate::task::__private::encode_output_shared::<#output_ty>)
            }
        }

        #(#cfg_attrs)*
        #krate::task::inventory::submit! {
            #krate::task::TaskEntry::of::<#name>()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(attr: TokenStream2, item: TokenStream2) -> String {
        match expand(attr, item) {
            Ok(t) => panic!("expected an error, got {t}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_plain_fn() {
        let out = expand(
            quote!(),
            quote!(
                pub fn add(a: i64, mut b: i64) -> i64 {
                    a + b
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("struct add"));
        assert!(out.contains(":: rdask :: task :: Task for add"));
        assert!(out.contains("type Args = (i64 , i64 ,)"));
        // Plain return: the output is the type itself, no TaskReturn.
        assert!(out.contains("type Output = i64"));
    }

    #[test]
    fn a_borrowing_parameter_is_passed_as_its_owned_type() {
        let out = expand(
            quote!(),
            quote!(
                fn rows(x: View<'_>, n: u64) -> u64 {
                    n
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(
            out.contains("type Args = (< View < 'static > as :: rdask :: task :: BorrowedArg > :: Owned , u64 ,)"),
            "{out}"
        );
        // Decoded as the borrowing type itself, from the argument's bytes.
        assert!(out.contains("decode_arg :: < View < '_ > >"), "{out}");
    }

    #[test]
    fn result_return_goes_through_task_return() {
        let out = expand(
            quote!(crate = "crate"),
            quote!(
                fn f() -> std::io::Result<u64> {
                    Ok(1)
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("crate :: task :: TaskReturn"));
        assert!(out.contains("type Args = ()"));
    }

    #[test]
    fn bare_path_crate_argument() {
        let out = expand(
            quote!(crate = my::rdask),
            quote!(
                fn f() {}
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("my :: rdask :: task :: Task for f"));
    }

    #[test]
    fn type_names_read_like_source() {
        let t = |ty: TokenStream2| type_name(&syn::parse2(ty).unwrap());
        assert_eq!(t(quote!(Vec<i64>)), "Vec<i64>");
        assert_eq!(
            t(quote!(std::collections::HashMap<String, Option<Vec<u8>>>)),
            "std::collections::HashMap<String, Option<Vec<u8>>>"
        );
        assert_eq!(t(quote!((i64, [u8; 4]))), "(i64, [u8; 4])");
        assert_eq!(t(quote!(Box<dyn Send>)), "Box<dyn Send>");
    }

    #[test]
    fn rejects_bad_signatures() {
        assert!(err(
            quote!(),
            quote!(
                async fn f() {}
            )
        )
        .contains("async"));
        assert!(err(
            quote!(),
            quote!(
                unsafe fn f() {}
            )
        )
        .contains("unsafe"));
        assert!(err(
            quote!(),
            quote!(
                fn f<T>(x: T) {}
            )
        )
        .contains("generic"));
        assert!(err(
            quote!(),
            quote!(
                fn f(x: i64)
                where
                    i64: Copy,
                {
                }
            )
        )
        .contains("generic"));
        assert!(err(
            quote!(),
            quote!(
                fn f(&self) {}
            )
        )
        .contains("self"));
        assert!(err(
            quote!(),
            quote!(
                fn f((a, b): (i64, i64)) {}
            )
        )
        .contains("pattern"));
        assert!(err(
            quote!(),
            quote!(
                fn f(s: &str) {}
            )
        )
        .contains("owned"));
        assert!(err(
            quote!(),
            quote!(
                fn f(s: impl Copy) {}
            )
        )
        .contains("impl Trait"));
        assert!(err(
            quote!(),
            quote!(
                fn f() -> impl Copy {
                    1
                }
            )
        )
        .contains("impl Trait"));
        assert!(err(
            quote!(),
            quote!(
                fn f(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8, i: u8) {}
            )
        )
        .contains("at most 8"));
        assert!(err(
            quote!(name = "x"),
            quote!(
                fn f() {}
            )
        )
        .contains("unsupported"));
    }
}
