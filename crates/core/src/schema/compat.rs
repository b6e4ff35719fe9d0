//! Whether a new schema accepts every record the current one accepts: the condition for a hot
//! reload, since records already in flight and producers not yet told were written for the
//! current one.

use super::{Field, FieldKind, Schema};

/// Every way `new` would refuse a record `current` accepts, one sentence each, naming the
/// field; empty when the change is safe (same fields, added optional fields, widened ranges,
/// added categories, removed fields, which are then ignored).
pub fn incompatibilities(current: &Schema, new: &Schema) -> Vec<String> {
    let mut found = Vec::new();
    for old in current.fields().iter().filter(|field| field.is_wire()) {
        let Some(field) = new
            .position(&old.name)
            .map(|position| &new.fields()[position])
            .filter(|field| field.is_wire())
        else {
            continue;
        };
        if field.required && !old.required {
            found.push(format!(
                "field `{}` becomes required: records without it were accepted",
                old.name
            ));
        }
        if let Some(narrower) = narrower(old, field) {
            found.push(format!("field `{}`: {narrower}", old.name));
        }
    }
    for field in new.fields().iter().filter(|field| field.is_wire()) {
        let known = current
            .position(&field.name)
            .is_some_and(|position| current.fields()[position].is_wire());
        if !known && field.required {
            found.push(format!(
                "field `{}` is new and required: records without it were accepted",
                field.name
            ));
        }
    }
    found
}

/// How `new` accepts fewer values than `old`, if it does.
fn narrower(old: &Field, new: &Field) -> Option<String> {
    match (&old.kind, &new.kind) {
        (FieldKind::Category { categories: before }, FieldKind::Category { categories: after }) => {
            let dropped: Vec<&str> = before
                .iter()
                .filter(|category| !after.iter().any(|c| c.value == category.value))
                .map(|category| category.value.as_str())
                .collect();
            (!dropped.is_empty()).then(|| format!("categories removed: {}", dropped.join(", ")))
        }
        (
            FieldKind::Integer { min, max },
            FieldKind::Integer {
                min: low,
                max: high,
            },
        ) => (low > min || high < max)
            .then(|| format!("range {low} to {high} does not cover the current {min} to {max}")),
        (
            FieldKind::Integer { min, max },
            FieldKind::Number {
                min: low,
                max: high,
            },
        ) => (*low > *min as f64 || *high < *max as f64)
            .then(|| format!("range {low} to {high} does not cover the current {min} to {max}")),
        (
            FieldKind::Number { min, max },
            FieldKind::Number {
                min: low,
                max: high,
            },
        ) => (low > min || high < max)
            .then(|| format!("range {low} to {high} does not cover the current {min} to {max}")),
        (FieldKind::Boolean, FieldKind::Boolean) => None,
        _ => Some(format!(
            "type changes from {} to {}",
            old.expected(),
            new.expected()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        Schema::parse(&format!("name = \"x\"\n{fields}"), "test.toml").unwrap()
    }

    const AMOUNT: &str = "[[field]]\nname = \"amount\"\nlabel = \"Amount\"\ntype = \"integer\"\nmin = 1\nmax = 100\n";
    const COLOUR: &str = "[[field]]\nname = \"colour\"\nlabel = \"Colour\"\ntype = \"category\"\ncategories = [{ value = \"red\", label = \"Red\" }, { value = \"blue\", label = \"Blue\" }]\n";

    #[test]
    fn the_same_schema_and_widened_ones_are_compatible() {
        let current = schema(&format!("{AMOUNT}{COLOUR}"));
        assert!(incompatibilities(&current, &current).is_empty());
        let widened = schema(&format!(
            "{}{}[[field]]\nname = \"note\"\nlabel = \"Note\"\ntype = \"boolean\"\nrequired = false\n",
            AMOUNT.replace("max = 100", "max = 1000"),
            COLOUR.replace("}]\n", "}, { value = \"green\", label = \"Green\" }]\n"),
        ));
        assert_eq!(incompatibilities(&current, &widened), Vec::<String>::new());
    }

    #[test]
    fn a_narrowed_range_a_dropped_category_a_new_required_field_and_a_type_change_are_named() {
        let current = schema(&format!("{AMOUNT}{COLOUR}"));
        let new = schema(&format!(
            "{}{}[[field]]\nname = \"note\"\nlabel = \"Note\"\ntype = \"boolean\"\n",
            AMOUNT.replace("min = 1", "min = 5"),
            COLOUR.replace(", { value = \"blue\", label = \"Blue\" }", ""),
        ));
        let found = incompatibilities(&current, &new).join("\n");
        assert!(found.contains("field `amount`: range 5 to 100"), "{found}");
        assert!(
            found.contains("field `colour`: categories removed: blue"),
            "{found}"
        );
        assert!(
            found.contains("field `note` is new and required"),
            "{found}"
        );
        let retyped = schema(&format!(
            "{}{COLOUR}",
            AMOUNT.replace(
                "type = \"integer\"\nmin = 1\nmax = 100",
                "type = \"boolean\""
            )
        ));
        let found = incompatibilities(&current, &retyped).join("\n");
        assert!(found.contains("field `amount`: type changes"), "{found}");
    }
}
