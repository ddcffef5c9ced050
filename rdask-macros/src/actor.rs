//! The `#[actor]` attribute: on a type's `impl` block, it makes the type
//! an rdask actor.
//!
//! It keeps the block as written and adds: `ActorType` for the type (its
//! name, the constructor `new` decoding its arguments, and a `dispatch`
//! matching method names), a proxy struct `<Type>Proxy` with one method per
//! actor method that sends the call and returns an `ActorCall`, and the
//! constructor task's registration in `inventory` (`actor:<path>::<Type>`),
//! so any worker binary linking the type can host it.
//!
//! Actor methods are the block's `pub` methods taking `&self` or
//! `&mut self`; their parameters follow the rules of `#[task]` (owned,
//! concrete, simple names), since they too are decoded from bytes.

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type, Visibility};

use crate::{check_type, parse_args, returns_result, type_name, Args, MAX_PARAMS};

/// One decoded parameter: name, type.
struct Param {
    name: syn::Ident,
    ty: Type,
}

fn params_of(f: &ImplItemFn) -> syn::Result<Vec<Param>> {
    if f.sig.inputs.len() > MAX_PARAMS + 1 {
        return Err(syn::Error::new(
            f.sig.inputs.span(),
            format!("#[actor] methods take at most {MAX_PARAMS} parameters; group them in a struct"),
        ));
    }
    let mut out = Vec::new();
    for input in &f.sig.inputs {
        let FnArg::Typed(pt) = input else { continue };
        let name = match &*pt.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "#[actor] method parameters must be simple `name: Type` bindings (no patterns)",
                ))
            }
        };
        check_type(&pt.ty)?;
        out.push(Param {
            name,
            ty: (*pt.ty).clone(),
        });
    }
    Ok(out)
}

fn check_fn(f: &ImplItemFn, what: &str) -> syn::Result<()> {
    let sig = &f.sig;
    if sig.asyncness.is_some() || sig.unsafety.is_some() || sig.abi.is_some() || sig.variadic.is_some() {
        return Err(syn::Error::new(
            sig.span(),
            format!("#[actor] {what} cannot be async, unsafe, extern or variadic"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("#[actor] {what} cannot be generic: each argument is decoded as one concrete type"),
        ));
    }
    Ok(())
}

/// Decodes `args[i]` into each parameter's local.
fn decodes(krate: &syn::Path, what: &TokenStream2, params: &[Param]) -> Vec<TokenStream2> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (local, ty) = (&p.name, &p.ty);
            let pname = p.name.to_string();
            let tname = type_name(ty);
            quote! {
                let #local: #ty = #krate::task::__private::decode_arg::<#ty>(#what, #i, #pname, #tname, args[#i])?;
            }
        })
        .collect()
}

pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let Args { krate } = parse_args(attr)?;
    let block: ItemImpl = syn::parse2(item)?;
    if block.trait_.is_some() {
        return Err(syn::Error::new(
            block.span(),
            "#[actor] goes on the type's own `impl Type { ... }` block, not a trait impl",
        ));
    }
    if !block.generics.params.is_empty() {
        return Err(syn::Error::new(
            block.generics.span(),
            "#[actor] types cannot be generic: a worker creates the actor by its type's name",
        ));
    }
    let self_ty = &block.self_ty;
    let ident = match &**self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    }
    .ok_or_else(|| syn::Error::new(self_ty.span(), "#[actor] needs a named type: `impl MyType { ... }`"))?;
    let proxy = format_ident!("{}Proxy", ident);

    let mut constructor = None;
    let mut methods = Vec::new();
    for item in &block.items {
        let ImplItem::Fn(f) = item else { continue };
        let has_self = matches!(f.sig.inputs.first(), Some(FnArg::Receiver(_)));
        if !has_self && f.sig.ident == "new" {
            check_fn(f, "constructors")?;
            constructor = Some(f);
        } else if has_self && matches!(f.vis, Visibility::Public(_)) {
            if let Some(FnArg::Receiver(r)) = f.sig.inputs.first() {
                if r.reference.is_none() || r.colon_token.is_some() {
                    return Err(syn::Error::new(
                        r.span(),
                        "#[actor] methods take `&self` or `&mut self`: the actor stays on its worker",
                    ));
                }
            }
            check_fn(f, "methods")?;
            methods.push(f);
        }
    }
    let constructor = constructor.ok_or_else(|| {
        syn::Error::new(
            block.self_ty.span(),
            "#[actor] needs a constructor `fn new(...) -> Self` (or `-> Result<Self, E>`) in the block",
        )
    })?;

    // The constructor.
    let cparams = params_of(constructor)?;
    let ctys: Vec<&Type> = cparams.iter().map(|p| &p.ty).collect();
    let cnames: Vec<&syn::Ident> = cparams.iter().map(|p| &p.name).collect();
    let cn = cparams.len();
    let cwhat = quote!(<Self as #krate::actor_api::ActorType>::NAME);
    let cdecodes = decodes(&krate, &cwhat, &cparams);
    let cret = match &constructor.sig.output {
        ReturnType::Type(_, ty) if returns_result(ty) => quote! {
            <#self_ty>::new(#(#cnames),*).map_err(|e| #krate::wire::messages::TaskFailure {
                kind: #krate::wire::messages::ErrorKind::Failed,
                message: ::std::format!("constructor of actor {}: {}", #cwhat, e),
            })
        },
        _ => quote!(::core::result::Result::Ok(<#self_ty>::new(#(#cnames),*))),
    };

    // The methods.
    let mut arms = Vec::new();
    let mut proxy_fns = Vec::new();
    let mut names = Vec::new();
    for f in &methods {
        let name = &f.sig.ident;
        let sname = name.to_string();
        let params = params_of(f)?;
        let n = params.len();
        let what = quote!(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident), "::", #sname));
        let decode = decodes(&krate, &what, &params);
        let locals: Vec<&syn::Ident> = params.iter().map(|p| &p.name).collect();
        let tys: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
        let (out_ty, convert) = match &f.sig.output {
            ReturnType::Default => (quote!(()), quote!()),
            ReturnType::Type(_, ty) if returns_result(ty) => (
                quote!(<#ty as #krate::task::TaskReturn>::Output),
                quote!(let __rdask_out = #krate::task::__private::into_output(__rdask_out)?;),
            ),
            ReturnType::Type(_, ty) => (quote!(#ty), quote!()),
        };
        arms.push(quote! {
            #sname => {
                #krate::task::__private::check_arity(#what, #n, args)?;
                #(#decode)*
                let __rdask_out = self.#name(#(#locals),*);
                #convert
                #krate::task::__private::encode_output(#what, &__rdask_out)
            }
        });
        let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc"));
        proxy_fns.push(quote! {
            #(#docs)*
            pub fn #name(&self, #(#locals: #tys),*) -> #krate::actor_api::ActorCall<#out_ty> {
                self.0.call(#sname, ::std::vec![#(#krate::actor_api::__private::encode_arg(&#locals)),*])
            }
        });
        names.push(sname);
    }

    let proxy_doc = format!("The handle of a [`{ident}`] actor: its methods, called on the actor's worker.");
    Ok(quote! {
        #block

        #[doc = #proxy_doc]
        #[derive(Clone, Debug)]
        pub struct #proxy(#krate::actor_api::ActorRef);

        #[allow(clippy::too_many_arguments)]
        impl #proxy {
            #(#proxy_fns)*
        }

        impl #krate::actor_api::ActorProxy for #proxy {
            fn from_ref(actor: #krate::actor_api::ActorRef) -> Self {
                #proxy(actor)
            }
            fn actor_ref(&self) -> &#krate::actor_api::ActorRef {
                &self.0
            }
        }

        #[allow(clippy::type_complexity)]
        impl #krate::actor_api::ActorType for #self_ty {
            const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident));
            const CONSTRUCTOR: &'static str =
                ::core::concat!("actor:", ::core::module_path!(), "::", ::core::stringify!(#ident));
            type Args = (#(#ctys,)*);
            type Proxy = #proxy;
            fn construct(
                args: &[&[u8]],
            ) -> ::core::result::Result<Self, #krate::wire::messages::TaskFailure> {
                #krate::task::__private::check_arity(#cwhat, #cn, args)?;
                #(#cdecodes)*
                #cret
            }
            fn dispatch(
                &mut self,
                method: &str,
                args: &[&[u8]],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::wire::messages::TaskFailure> {
                match method {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#krate::actor_api::__private::unknown_method(
                        #cwhat, method, &[#(#names),*],
                    )),
                }
            }
        }

        #krate::task::inventory::submit! {
            #krate::task::TaskEntry {
                name: <#self_ty as #krate::actor_api::ActorType>::CONSTRUCTOR,
                call: #krate::actor_api::__private::construct::<#self_ty>,
                shared: ::core::option::Option::None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn err(item: TokenStream2) -> String {
        match expand(quote!(), item) {
            Ok(t) => panic!("expected an error, got {t}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn expands_methods_proxy_and_registration() {
        let out = expand(
            quote!(crate = "crate"),
            quote!(
                impl Counter {
                    pub fn new(start: i64) -> Self {
                        Counter { n: start }
                    }
                    pub fn increment(&mut self, by: i64) -> i64 {
                        self.n += by;
                        self.n
                    }
                    pub fn check(&self) -> Result<i64, String> {
                        Ok(self.n)
                    }
                    fn helper(&self) {}
                    pub fn assoc() {}
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("pub struct CounterProxy"));
        assert!(out.contains("crate :: actor_api :: ActorType for Counter"));
        assert!(out.contains("type Args = (i64 ,)"));
        assert!(out.contains("\"increment\" =>") && out.contains("\"check\" =>"));
        assert!(!out.contains("\"helper\" =>") && !out.contains("\"assoc\" =>"), "{out}");
        assert!(out.contains("ActorCall < < Result < i64 , String > as crate :: task :: TaskReturn > :: Output >"));
        assert!(out.contains("\"actor:\""));
        assert!(out.contains("inventory :: submit"));
    }

    #[test]
    fn rejects_what_cannot_be_an_actor() {
        assert!(err(quote!(
            impl Counter {
                pub fn get(&self) -> i64 {
                    1
                }
            }
        ))
        .contains("constructor"));
        assert!(err(quote!(
            impl Clone for Counter {
                fn clone(&self) -> Self {
                    Counter
                }
            }
        ))
        .contains("trait impl"));
        assert!(err(quote!(
            impl<T> Holder<T> {
                pub fn new() -> Self {
                    todo!()
                }
            }
        ))
        .contains("generic"));
        assert!(err(quote!(
            impl Counter {
                pub fn new() -> Self {
                    Counter
                }
                pub fn consume(self) {}
            }
        ))
        .contains("&self"));
        assert!(err(quote!(
            impl Counter {
                pub fn new() -> Self {
                    Counter
                }
                pub fn name(&self, s: &str) {}
            }
        ))
        .contains("owned"));
        assert!(err(quote!(
            impl Counter {
                pub fn new() -> Self {
                    Counter
                }
                pub async fn later(&self) {}
            }
        ))
        .contains("async"));
    }
}
