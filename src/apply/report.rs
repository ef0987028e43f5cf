//! What plan and apply print: for people, the steps per image with each change as
//! `before -> after`; for machines (`--output json`), the same as one JSON document.

use serde_json::json;

use super::prune::Orphan;
use super::{AppliedDocument, PlannedDocument};

use crate::glance::{GlanceImage, PatchOp};
use crate::pass::act::{ActError, Effect};
use crate::pass::plan::{Progress, Step};

/// How plan prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Pretty,
    Json,
}

/// One step in words, with `before -> after` for each patched field.
pub fn describe(step: &Step, current: Option<&GlanceImage>, glance_name: &str) -> Vec<String> {
    match step {
        Step::Create => vec![format!("create image {glance_name:?}")],
        Step::Patch(ops) => ops.iter().map(|op| describe_patch(op, current)).collect(),
        Step::AddMember(project) => vec![format!("share with project {project}")],
        Step::RemoveMember(project) => vec![format!("stop sharing with project {project}")],
        Step::StartTransfer => vec!["upload the source's data".to_string()],
        Step::Deactivate => vec!["deactivate".to_string()],
        Step::Reactivate => vec!["reactivate".to_string()],
        Step::Delete { unprotect: true } => vec!["unprotect, then delete".to_string()],
        Step::Delete { unprotect: false } => vec!["delete".to_string()],
    }
}

fn describe_patch(op: &PatchOp, current: Option<&GlanceImage>) -> String {
    let quoted = |text: Option<&str>| text.map_or("(none)".to_string(), |t| format!("{t:?}"));
    let change =
        |field: &str, before: String, after: String| format!("{field}: {before} -> {after}");
    // A field of the image as it is now, or "(none)" for an image not created yet.
    let now = |read: fn(&GlanceImage) -> String| current.map_or("(none)".to_string(), read);
    match op {
        PatchOp::SetName(name) => change(
            "name",
            quoted(current.and_then(|i| i.name.as_deref())),
            quoted(Some(name)),
        ),
        PatchOp::SetVisibility(visibility) => change(
            "visibility",
            now(|i| i.visibility.to_string()),
            visibility.to_string(),
        ),
        PatchOp::SetProtected(value) => change(
            "protected",
            now(|i| i.protected.to_string()),
            value.to_string(),
        ),
        PatchOp::SetHidden(value) => {
            change("hidden", now(|i| i.hidden.to_string()), value.to_string())
        }
        PatchOp::SetMinDisk(value) => change(
            "min_disk",
            now(|i| i.min_disk.to_string()),
            value.to_string(),
        ),
        PatchOp::SetMinRam(value) => {
            change("min_ram", now(|i| i.min_ram.to_string()), value.to_string())
        }
        PatchOp::SetContainerFormat(format) => change(
            "container_format",
            current
                .and_then(|i| i.container_format.as_ref())
                .map_or("(none)".into(), ToString::to_string),
            format.to_string(),
        ),
        PatchOp::SetDiskFormat(format) => change(
            "disk_format",
            current
                .and_then(|i| i.disk_format.as_ref())
                .map_or("(none)".into(), ToString::to_string),
            format.to_string(),
        ),
        PatchOp::SetTags(tags) => change(
            "tags",
            format!("{:?}", current.map(|i| i.tags.clone()).unwrap_or_default()),
            format!("{tags:?}"),
        ),
        PatchOp::SetProperty { key, value } => change(
            &format!("property {key}"),
            quoted(
                current
                    .and_then(|i| i.properties.get(key))
                    .map(String::as_str),
            ),
            quoted(Some(value)),
        ),
        PatchOp::RemoveProperty(key) => change(
            &format!("property {key}"),
            quoted(
                current
                    .and_then(|i| i.properties.get(key))
                    .map(String::as_str),
            ),
            "(removed)".to_string(),
        ),
    }
}

fn glance_name(planned: &PlannedDocument) -> String {
    planned
        .document
        .image
        .spec
        .name
        .clone()
        .unwrap_or_else(|| planned.document.name())
}

/// Prints the plan; returns (changes, errors).
pub fn print_plan(
    planned: &[PlannedDocument],
    orphans: &[Orphan],
    output: Output,
) -> (usize, usize) {
    let (mut changes, mut unchanged, mut errors) = (0, 0, 0);
    let mut entries = Vec::new();
    for item in planned {
        let key = item.document.label();
        match &item.outcome {
            Err(err) => {
                errors += 1;
                entries.push(json!({"image": key, "error": err.to_string()}));
                if output == Output::Pretty {
                    println!("! {key}: {err}");
                }
            }
            Ok(image) => {
                let lines: Vec<String> = image
                    .steps
                    .iter()
                    .flat_map(|step| describe(step, image.current.as_ref(), &glance_name(item)))
                    .collect();
                let id = image.current.as_ref().map(|i| i.id.clone());
                let blocked = match &image.progress {
                    Progress::Blocked { reason, message } => Some(format!("{reason}: {message}")),
                    _ => None,
                };
                match (&blocked, lines.is_empty()) {
                    (Some(_), _) => errors += 1,
                    (None, true) => unchanged += 1,
                    (None, false) => changes += 1,
                }
                if output == Output::Pretty {
                    match (&blocked, lines.is_empty()) {
                        (Some(why), _) => println!("! {key}: {why}"),
                        (None, true) => match &image.progress {
                            // Nothing glint can do now, yet not in sync (an import whose
                            // filter matches no image yet): say what it waits for.
                            Progress::Working { reason, message } => {
                                println!("= {key}: no changes ({reason}: {message})")
                            }
                            _ => println!("= {key}: no changes"),
                        },
                        (None, false) => {
                            let target = id.as_deref().unwrap_or("new");
                            println!("~ {key} ({target}):");
                            for line in &lines {
                                println!("    {line}");
                            }
                        }
                    }
                }
                let standard = super::standard::image_lines(&item.document, jiff::Timestamp::now());
                if output == Output::Pretty {
                    for line in &standard {
                        println!("  ? {line}");
                    }
                }
                entries.push(json!({
                    "image": key,
                    "id": id,
                    "actions": lines,
                    "blocked": blocked,
                    "standard": standard,
                }));
            }
        }
    }
    for orphan in orphans {
        changes += 1;
        let step = "delete (its manifest is gone; --prune)".to_string();
        if output == Output::Pretty {
            println!("- {} ({}): {step}", orphan.key, orphan.image.id);
        }
        entries.push(json!({
            "image": orphan.key,
            "id": orphan.image.id,
            "actions": [step],
            "blocked": null,
        }));
    }
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"images": entries, "changes": changes, "errors": errors})
            )
            .unwrap_or_default()
        ),
        Output::Pretty => {
            println!("{changes} image(s) to change, {unchanged} unchanged, {errors} error(s)")
        }
    }
    (changes, errors)
}

/// Prints apply's final table; returns (changed, errors).
pub fn print_applied(
    applied: &[AppliedDocument],
    pruned: &[(Orphan, Result<Effect, ActError>)],
) -> (usize, usize) {
    let (mut changed, mut errors) = (0, 0);
    let mut rows = vec![[
        "NAME".to_string(),
        "ID".to_string(),
        "STATUS".to_string(),
        "SIZE".to_string(),
        "CHECKSUM".to_string(),
    ]];
    for item in applied {
        match &item.outcome {
            Err(err) => {
                errors += 1;
                println!("! {}: {err}", item.document.label());
            }
            Ok(result) => {
                changed += usize::from(result.changed);
                let image = result.image.as_ref();
                let text = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
                rows.push([
                    item.document.label(),
                    text(image.map(|i| i.id.clone())),
                    text(image.map(|i| i.status.to_string())),
                    text(image.and_then(|i| i.size).map(|s| s.to_string())),
                    text(image.and_then(|i| i.checksum.clone())),
                ]);
            }
        }
    }
    for (orphan, outcome) in pruned {
        match outcome {
            Ok(Effect::KeptInUse { why, .. }) => {
                changed += 1;
                println!(
                    "{}: kept {}: still in use ({why}); hidden, and the next --prune tries to delete it again",
                    orphan.key, orphan.image.id
                );
            }
            Ok(_) => {
                changed += 1;
                rows.push([
                    orphan.key.clone(),
                    orphan.image.id.clone(),
                    "deleted (pruned)".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                ]);
            }
            Err(err) => {
                errors += 1;
                println!("! {}: cannot prune {}: {err}", orphan.key, orphan.image.id);
            }
        }
    }
    if rows.len() > 1 {
        let widths: Vec<usize> = (0..5)
            .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", cells.join("  ").trim_end());
        }
    }
    if changed == 0 && errors == 0 {
        println!("no changes");
    }
    (changed, errors)
}
