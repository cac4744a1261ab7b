//! `netcore_codegen::compat`: every kind of change between two schema texts, classified for old
//! peers, with where it is declared.

use std::path::Path;

use netcore_codegen::model::Origin;
use netcore_codegen::schema::parse_str;
use netcore_codegen::{compat, Change, Impact};

const OLD: &str = r#"
struct Timestamp { millis: u64 }
/// A user.
struct User { id: u32, name: string }
enum Status { Active, Suspended { reason: string }, Deleted(u64) }
struct Unused { a: u8 }
service Users @prefix("/user") {
    /// Fetches a user.
    rpc get(id: u32) -> User?;
    rpc status(id: u32) -> Status;
    rpc delete(id: u32) -> bool @priority(5);
    event changed(id: u32);
}
"#;

fn changes(old: &str, new: &str) -> Vec<Change> {
    let parse = |src: &str, file: &str| parse_str(src, Path::new(file)).unwrap_or_else(|e| panic!("{e}"));
    compat(&parse(old, "old.ncs"), &parse(new, "new.ncs"))
}

/// `old` with `from` replaced by `to` (which must be there).
fn edit(from: &str, to: &str) -> String {
    assert!(OLD.contains(from), "{from}");
    OLD.replacen(from, to, 1)
}

/// The one change `new` makes to [`OLD`], as `(impact, message, file:line:col)`.
fn only(new: &str) -> (Impact, String, String) {
    let list = changes(OLD, new);
    assert_eq!(list.len(), 1, "{list:#?}");
    let change = &list[0];
    let at = match change.origin() {
        Some(Origin::Schema { file, line, column }) => format!("{}:{line}:{column}", file.display()),
        other => panic!("{other:?}"),
    };
    (change.impact, change.message.clone(), at)
}

#[test]
fn the_same_declaration_has_no_changes() {
    assert!(changes(OLD, OLD).is_empty());
}

#[test]
fn docs_argument_names_options_and_order_are_cosmetic() {
    let (impact, message, at) = only(&edit("/// Fetches a user.", "/// Fetches one user by id."));
    assert_eq!(
        (impact, message.as_str(), at.as_str()),
        (Impact::Cosmetic, "docs of `/user/get` changed", "new.ncs:9:9")
    );

    let (impact, message, _) = only(&edit("rpc get(id: u32)", "rpc get(user: u32)"));
    assert_eq!((impact, message.as_str()), (Impact::Cosmetic, "argument `id` of `/user/get` renamed to `user`"));

    let (impact, _, _) = only(&edit("@priority(5)", "@priority(6) @timeout_ms(100)"));
    assert_eq!(impact, Impact::Cosmetic);

    let reordered = edit("    rpc delete(id: u32) -> bool @priority(5);\n", "").replace(
        "    event changed(id: u32);\n",
        "    event changed(id: u32);\n    rpc delete(id: u32) -> bool @priority(5);\n",
    );
    let (impact, message, _) = only(&reordered);
    assert_eq!((impact, message.as_str()), (Impact::Cosmetic, "methods of `Users` reordered"));

    assert!(changes(OLD, &reordered).iter().all(|c| !c.is_breaking()));
}

#[test]
fn adding_a_method_is_compatible_removing_one_breaks() {
    let (impact, message, at) = only(&edit("    event changed", "    rpc count() -> u64;\n    event changed"));
    assert_eq!(impact, Impact::Compatible);
    assert!(message.starts_with("method `/user/count` added"), "{message}");
    assert_eq!(at, "new.ncs:12:9");

    let (impact, message, at) = only(&edit("    rpc delete(id: u32) -> bool @priority(5);\n", ""));
    assert_eq!(impact, Impact::Breaking);
    assert!(message.starts_with("method `/user/delete` removed"), "{message}");
    assert_eq!(at, "old.ncs:11:9", "a removed item points into the old declaration");
}

#[test]
fn changing_an_argument_or_a_result_breaks() {
    let (impact, message, at) = only(&edit("rpc delete(id: u32)", "rpc delete(id: u64)"));
    assert_eq!(
        (impact, message.as_str()),
        (Impact::Breaking, "argument `id` of `/user/delete` changed from `u32` to `u64`")
    );
    assert_eq!(at, "new.ncs:11:9");

    let (impact, message, _) = only(&edit("rpc delete(id: u32)", "rpc delete(id: u32, hard: bool)"));
    assert_eq!((impact, message.as_str()), (Impact::Breaking, "method `/user/delete` takes 2 arguments instead of 1"));

    let (impact, message, _) = only(&edit("-> bool", "-> u8"));
    assert_eq!((impact, message.as_str()), (Impact::Breaking, "result of `/user/delete` changed from `bool` to `u8`"));

    let (impact, _, _) = only(&edit("event changed(id: u32)", "rpc changed(id: u32)"));
    assert_eq!(impact, Impact::Breaking);
}

#[test]
fn adding_a_field_breaks_the_methods_that_reach_the_type() {
    let list = changes(OLD, &edit("name: string }", "name: string, email: string? }"));
    let messages: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(list.len(), 2, "{messages:#?}");
    // The method whose layout moved, pointing at the method …
    assert_eq!(list[0].impact, Impact::Breaking);
    assert!(messages[0].starts_with("new.ncs:9:9: breaking: layout of `/user/get` changed"), "{}", messages[0]);
    assert!(messages[0].contains("`User`"), "{}", messages[0]);
    // … and the field itself, pointing at the field, naming what it breaks.
    assert_eq!(messages[1], "new.ncs:4:38: breaking: field `email` added to struct `User`: breaks `/user/get`");

    // A type no method uses can change freely.
    let (impact, message, _) = only(&edit("struct Unused { a: u8 }", "struct Unused { a: u8, b: u8 }"));
    assert_eq!(impact, Impact::Compatible);
    assert!(message.ends_with("(no method of the old declaration uses it)"), "{message}");
}

#[test]
fn reordering_variants_or_fields_breaks() {
    let list = changes(
        OLD,
        &edit(
            "enum Status { Active, Suspended { reason: string }, Deleted(u64) }",
            "enum Status { Active, Deleted(u64), Suspended { reason: string } }",
        ),
    );
    let messages: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(list.len(), 2, "{messages:#?}");
    assert!(list.iter().all(Change::is_breaking));
    assert!(
        messages[0].contains("layout of `/user/status` changed through the types it reaches (`Status`)"),
        "{}",
        messages[0]
    );
    assert_eq!(
        messages[1],
        "new.ncs:5:23: breaking: variants of enum `Status` reordered (positions are on the wire): breaks `/user/status`"
    );

    let list = changes(OLD, &edit("{ id: u32, name: string }", "{ name: string, id: u32 }"));
    assert!(list.iter().any(|c| c.message.starts_with("fields of struct `User` reordered")), "{list:#?}");
}

#[test]
fn renames_are_found_and_classified() {
    // A field renamed in place: same wire bytes, but names are in the layout, so the hash moves.
    let list = changes(OLD, &edit("name: string }", "full_name: string }"));
    assert!(list.iter().all(Change::is_breaking), "{list:#?}");
    assert!(list
        .iter()
        .any(|c| c.message == "field `name` of struct `User` renamed to `full_name`: breaks `/user/get`"));

    // A method renamed is one removed and one added.
    let list = changes(OLD, &edit("rpc delete(", "rpc remove("));
    let impacts: Vec<(Impact, bool)> = list
        .iter()
        .map(|c| (c.impact, c.message.contains("/user/remove") || c.message.contains("/user/delete")))
        .collect();
    assert_eq!(impacts, [(Impact::Compatible, true), (Impact::Breaking, true)]);

    // A type renamed.
    let list = changes(OLD, &edit("enum Status {", "enum State {").replace("-> Status;", "-> State;"));
    assert!(
        list.iter()
            .any(|c| c.message == "type `Status` renamed to `State` (names are in layouts): breaks `/user/status`"),
        "{list:#?}"
    );
    assert!(list.iter().any(|c| c.message == "result of `/user/status` changed from `Status` to `State`"), "{list:#?}");

    // A service renamed under the same prefix: routes and method hashes do not see the name.
    let (impact, message, _) = only(&edit("service Users", "service Accounts"));
    assert_eq!(impact, Impact::Compatible);
    assert!(message.starts_with("service `Users` renamed to `Accounts`"), "{message}");
}

#[test]
fn changing_the_prefix_breaks_every_call() {
    let (impact, message, at) = only(&edit("@prefix(\"/user\")", "@prefix(\"/users\")"));
    assert_eq!(impact, Impact::Breaking);
    assert_eq!(message, "prefix of `Users` changed from `/user` to `/users`: every route id changes, every call fails");
    assert_eq!(at, "new.ncs:7:1");
}

#[test]
fn services_and_types_added_and_removed() {
    let added = format!("{OLD}\nstruct Extra {{ x: u8 }}\nservice Logs {{ event line(text: string); }}\n");
    let list = changes(OLD, &added);
    let impacts: Vec<Impact> = list.iter().map(|c| c.impact).collect();
    assert_eq!(impacts, [Impact::Compatible, Impact::Compatible], "{list:#?}");
    let list = changes(&added, OLD);
    assert!(list.iter().any(|c| c.is_breaking() && c.message.starts_with("service `Logs` removed")), "{list:#?}");
    assert!(list.iter().any(|c| c.impact == Impact::Compatible && c.message == "type `Extra` removed"), "{list:#?}");
}
