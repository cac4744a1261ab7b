//! The schema front end: what parses, what does not (with file, line, column and the line shown),
//! what validation catches, and what the fingerprint covers.

use std::path::Path;

use netcore_codegen::model::{MethodKind, Type};
use netcore_codegen::schema::parse_str;
use netcore_codegen::validate::validate;

fn parse(src: &str) -> netcore_codegen::model::Schema {
    parse_str(src, Path::new("t.ncs")).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(src: &str) -> Vec<String> {
    validate(&parse(src), true).into_iter().map(|d| d.message).collect()
}

#[test]
fn streams_go_last_in_a_call_or_as_its_result() {
    let schema = parse("service S { rpc up(name: string, image: stream<bytes>) -> u64; }");
    let up = &schema.services[0].methods[0];
    assert_eq!(up.args[1].ty.ty, Type::Stream(Box::new(Type::Bytes)));
    assert_eq!(up.args[1].ty.ty.canonical(), "stream<bytes>");
    assert!(up.stream_arg().is_some() && up.stream_result().is_none());
    assert!(problems("service S { rpc up(name: string, image: stream<bytes>) -> u64; }").is_empty());
    // Typed items, of any type but a stream; results too, and both ways.
    let ok = "struct P { x: u32 } service S { rpc up(n: u8, items: stream<P>); rpc v(s: stream<list<u32>>); \
              rpc down(n: u8) -> stream<bytes>; rpc sub() -> stream<P>; rpc echo(n: u8, s: stream<P>) -> stream<P>; \
              rpc tail(s: stream<bytes>) -> stream<list<string>>; }";
    assert!(problems(ok).is_empty(), "{:?}", problems(ok));
    let methods = &parse(ok).services[0].methods;
    let shapes: Vec<(bool, Option<String>, bool)> = methods
        .iter()
        .map(|m| (m.stream_arg().is_some(), m.stream_result().map(Type::canonical), m.is_bidirectional()))
        .collect();
    let expected = [
        (true, None, false),
        (true, None, false),
        (false, Some("bytes".to_owned()), false),
        (false, Some("P".to_owned()), false),
        (true, Some("P".to_owned()), true),
        (true, Some("list<string>".to_owned()), true),
    ];
    assert_eq!(shapes, expected);
    let found = problems(
        r#"
        service S {
            rpc early(image: stream<bytes>, name: string);
            event pushed(image: stream<bytes>);
            rpc nested(images: option<stream<bytes>>);
            rpc streams(of: stream<stream<u32>>);
            event items(items: stream<u32>);
            rpc results() -> stream<stream<u8>>;
            rpc wrapped() -> list<stream<u8>>;
        }
        "#,
    );
    let expected = [
        "a stream goes last: move it after the other arguments",
        "events cannot carry a stream; make it an `rpc` (a call)",
        "a stream cannot be inside another type; use it as the last argument itself",
        "a stream cannot be inside another type; use it as the last argument itself",
        "events cannot carry a stream; make it an `rpc` (a call)",
        "a stream cannot be inside another type; return the stream itself: `-> stream<T>`",
        "a stream cannot be inside another type; return the stream itself: `-> stream<T>`",
    ];
    assert_eq!(found, expected);
    // An event's result is refused by the parser already.
    let err = parse_str("service S { event e() -> stream<u8>; }", Path::new("t.ncs")).unwrap_err().to_string();
    assert!(err.contains("events are one-way and return nothing"), "{err}");
}

#[test]
fn the_context_option_is_a_flag_in_any_position() {
    let schema = parse(
        r#"
        service S {
            rpc a() -> u32 @context;
            rpc b() -> u32 @priority(2) @context @timeout_ms(5);
            rpc c();
            event d(n: u8) @context;
        }
        "#,
    );
    let context: Vec<bool> = schema.services[0].methods.iter().map(|m| m.options.context).collect();
    assert_eq!(context, [true, true, false, true]);
    assert_eq!(schema.services[0].methods[1].options.timeout_ms, Some(5));
    let err = parse_str("service S { rpc a() @contxt(1); }", Path::new("t.ncs")).unwrap_err().to_string();
    assert!(err.contains("unknown method option `@contxt`") && err.contains("`@context`"), "{err}");
}

#[test]
fn parses_types_services_options_and_docs() {
    let schema = parse(
        r#"
        /// A point.
        struct P { x: f32, y: f32, label: string?, tags: list<string>, extra: map<string, option<u64>>, }
        enum E { A, B(u8, bytes), C { at: P } }
        /* block comment */
        service S @prefix("/s") {
            /// Gets.
            rpc get(id: u32) -> P? @priority(6) @timeout_ms(1_500);
            event tick();
        }
        "#,
    );
    assert_eq!(schema.types.len(), 2);
    assert_eq!(schema.types[0].docs, ["A point."]);
    let service = &schema.services[0];
    assert_eq!((service.name.as_str(), service.prefix.as_str()), ("S", "/s"));
    let get = &service.methods[0];
    assert_eq!(get.docs, ["Gets."]);
    assert_eq!(get.returns.ty, Type::Option(Box::new(Type::Named("P".into()))));
    assert_eq!((get.options.priority, get.options.timeout_ms), (Some(6), Some(1500)));
    assert_eq!(service.methods[1].kind, MethodKind::Event);
    assert!(validate(&schema, true).is_empty());
}

#[test]
fn parse_errors_name_file_line_and_column_and_show_the_line() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("struct P { x: u32 ", 1, 19, "expected `}`, found the end of the file"),
        ("service S {\n  rpc get(id: u33);\n}", 2, 15, "unknown type `u33`"),
        ("service S { event e() -> u32; }", 1, 23, "events are one-way"),
        ("service S { rpc f() @priority(8); }", 1, 31, "priority must be 0 to 7"),
        ("service S @route(\"/x\") {}", 1, 12, "unknown service option `@route`"),
        ("struct P { x: u32 } trait Q {}", 1, 21, "expected `import`, `struct`, `enum` or `service`"),
        ("import \"x.ncs\"", 1, 15, "expected `;`"),
        ("struct P { s: \"unterminated }", 1, 15, "unterminated string"),
        ("struct P { x: u32 } # oops", 1, 21, "unexpected character '#'"),
        ("/* never closed", 1, 1, "unterminated block comment"),
    ];
    for &(src, line, column, needle) in cases {
        let err = parse_str(src, Path::new("schemas/t.ncs")).expect_err(src);
        let shown = err.to_string();
        assert!(err.message.contains(needle), "{src:?}: {shown}");
        assert_eq!((err.line, err.column), (line, column), "{src:?}: {shown}");
        assert!(shown.starts_with(&format!("schemas/t.ncs:{line}:{column}: ")), "{shown}");
        let source_line = src.lines().nth(line - 1).unwrap();
        assert!(shown.contains(source_line), "the offending line is shown: {shown}");
        assert!(shown.ends_with('^'), "a caret marks the column: {shown}");
    }
}

#[test]
fn validation_reports_every_problem() {
    let found = problems(
        r#"
        struct A { a: u32, a: u32, b: Missing }
        struct A { x: u32 }
        struct Loop { next: Loop? }
        struct Fine { children: list<Fine> }
        service S @prefix("s/") {
            rpc get(x: u32) -> u32;
            rpc get(x: u32) -> u32;
            rpc new() -> u32;
            rpc type() -> u32;
        }
        "#,
    );
    let expect = [
        "field `a` is declared twice",
        "unknown type `Missing`",
        "type `A` is declared twice",
        "type `Loop` contains itself",
        "route prefix \"s/\" must start with `/`",
        "method `get` is declared twice",
        "clashes with the generated client",
        "`type` is a Rust keyword",
    ];
    for needle in expect {
        assert!(found.iter().any(|m| m.contains(needle)), "missing {needle:?} in {found:#?}");
    }
    assert!(!found.iter().any(|m| m.contains("Fine")), "recursion through a list is fine: {found:#?}");
}

#[test]
fn imports_are_followed_relative_to_the_importing_file_and_reported_where_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("common.ncs"), "struct T { at: u64 }\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/uses.ncs"),
        "import \"../common.ncs\";\nimport \"../common.ncs\";\nservice U { rpc now() -> T; }\n",
    )
    .unwrap();
    let (schema, files) = netcore_codegen::schema::parse_file(&dir.path().join("sub/uses.ncs")).unwrap();
    assert_eq!(files.len(), 2, "an import seen twice is read once");
    assert!(validate(&schema, true).is_empty());

    std::fs::write(dir.path().join("broken.ncs"), "// first line\nimport \"nowhere.ncs\";\n").unwrap();
    let err = netcore_codegen::schema::parse_file(&dir.path().join("broken.ncs")).unwrap_err();
    assert_eq!((err.line, err.column), (2, 1));
    assert!(err.message.contains("cannot read") && err.message.contains("nowhere.ncs"), "{err}");
}

#[test]
fn the_fingerprint_covers_the_wire_surface_only() {
    let base = parse("service S @prefix(\"/s\") { rpc a(x: u32) -> string; event b(y: list<u8>); }");
    let fp = |src: &str| {
        let schema = parse(src);
        schema.services[0].fingerprint(&schema.types)
    };
    let same = [
        "service S @prefix(\"/s\") { event b(z: list<u8>); /// doc\n rpc a(renamed: u32) -> string @priority(7) @timeout_ms(9); }",
    ];
    for src in same {
        assert_eq!(fp(src), base.services[0].fingerprint(&base.types), "{src}");
    }
    let different = [
        "service S @prefix(\"/t\") { rpc a(x: u32) -> string; event b(y: list<u8>); }",
        "service S @prefix(\"/s\") { rpc a(x: u64) -> string; event b(y: list<u8>); }",
        "service S @prefix(\"/s\") { rpc a(x: u32) -> string?; event b(y: list<u8>); }",
        "service S @prefix(\"/s\") { rpc a(x: u32) -> string; rpc b(y: list<u8>); }",
        "service S @prefix(\"/s\") { rpc a(x: u32, y: u32) -> string; event b(y: list<u8>); }",
        "service T @prefix(\"/s\") { rpc a(x: u32) -> string; event b(y: list<u8>); }",
    ];
    for src in different {
        assert_ne!(fp(src), base.services[0].fingerprint(&base.types), "{src}");
    }
}

#[test]
fn the_fingerprint_covers_the_layout_of_every_type_a_method_reaches() {
    let service = "service S @prefix(\"/s\") { rpc a(x: Outer) -> u32; }";
    let base = format!(
        "struct Inner {{ v: u32 }} enum Kind {{ A, B(Inner) }} struct Outer {{ k: Kind, i: list<Inner> }} {service}"
    );
    let fp = |src: &str| {
        let schema = parse(src);
        schema.services[0].fingerprint(&schema.types)
    };
    let schema = parse(&base);
    assert_eq!(
        schema.services[0].method_layout(&schema.services[0].methods[0], &schema.types),
        "call a(Outer{k:Kind[A|B(Inner{v:u32})],i:list<@Inner>})->u32"
    );
    // Declaration order of the types does not matter; anything inside them does.
    let same = format!(
        "struct Outer {{ k: Kind, i: list<Inner> }} enum Kind {{ A, B(Inner) }} struct Inner {{ v: u32 }} {service}"
    );
    assert_eq!(fp(&same), fp(&base));
    let different = [
        "struct Inner { v: u64 } enum Kind { A, B(Inner) } struct Outer { k: Kind, i: list<Inner> }",
        "struct Inner { w: u32 } enum Kind { A, B(Inner) } struct Outer { k: Kind, i: list<Inner> }",
        "struct Inner { v: u32 } enum Kind { B(Inner), A } struct Outer { k: Kind, i: list<Inner> }",
        "struct Inner { v: u32 } enum Kind { A, B(Inner), C } struct Outer { k: Kind, i: list<Inner> }",
        "struct Inner { v: u32 } enum Kind { A, B { x: Inner } } struct Outer { k: Kind, i: list<Inner> }",
        "struct Inner { v: u32 } enum Kind { A, B(Inner) } struct Outer { i: list<Inner>, k: Kind }",
    ];
    for types in different {
        assert_ne!(fp(&format!("{types} {service}")), fp(&base), "{types}");
    }
}

/// The generated code for the example schema, compared with a checked-in copy. Rewrite it on
/// purpose with `NETCORE_BLESS=1 cargo test -p netcore-codegen --test schema`.
#[test]
fn generated_code_matches_the_golden_file() {
    // users.ncs: types, calls and an event; account.ncs: methods taking the request context.
    // streams.ncs: results streamed to the client, and streams both ways.
    for stem in ["users", "account", "streams"] {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../schemas/{stem}.ncs"));
        let generated = netcore_codegen::generate(&schema).unwrap();
        let generated = generated.replace(&schema.display().to_string(), &format!("schemas/{stem}.ncs"));
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{stem}.rs"));
        if std::env::var_os("NETCORE_BLESS").is_some() {
            std::fs::write(&golden, &generated).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).expect("golden file; create it with NETCORE_BLESS=1");
        assert!(generated == expected, "generated code for {stem}.ncs changed; review and rerun with NETCORE_BLESS=1");
    }
}
