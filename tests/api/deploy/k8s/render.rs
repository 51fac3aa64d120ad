//! The part of kustomize these manifests use, so they can be rendered and checked offline
//! (no kubectl in CI): resources, configMapGenerator, namespace, images, strategic-merge
//! patches (maps merged, lists of named items merged by name) and JSON 6902 patches (add,
//! replace, remove). Anything else in a kustomization fails the render rather than being
//! ignored. Where kubectl is installed, its rendering is compared with this one.

use crate::deploy::support::{read, text, yaml_file};
use serde_json::{Value, json};
use std::path::Path;

const FIELDS: [&str; 8] =
    ["apiVersion", "kind", "resources", "configMapGenerator", "namespace", "images", "patches", "metadata"];

/// The resources a kustomization directory (relative to the repository) renders to.
pub fn kustomize(dir: &Path) -> Vec<Value> {
    let kustomization = &yaml_file(dir.join("kustomization.yaml"))[0];
    for field in kustomization.as_object().unwrap().keys() {
        assert!(FIELDS.contains(&field.as_str()), "{}: `{field}` is not supported by this renderer", dir.display());
    }
    let mut resources = Vec::new();
    for entry in list(kustomization, "resources") {
        let path = dir.join(entry.as_str().unwrap());
        match crate::deploy::support::repo().join(&path).is_dir() {
            true => resources.extend(kustomize(&path)),
            false => resources.extend(yaml_file(&path)),
        }
    }
    resources.extend(list(kustomization, "configMapGenerator").iter().map(|g| config_map(dir, g)));
    for patch in list(kustomization, "patches") {
        apply_patch(&mut resources, dir, patch);
    }
    if let Some(namespace) = kustomization["namespace"].as_str() {
        let namespaced = resources.iter_mut().filter(|r| r["kind"] != "Namespace");
        namespaced.for_each(|r| r["metadata"]["namespace"] = json!(namespace));
    }
    for image in list(kustomization, "images") {
        set_image(&mut resources, image);
    }
    resources
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn config_map(dir: &Path, generator: &Value) -> Value {
    let mut data = serde_json::Map::new();
    for file in list(generator, "files") {
        let file = file.as_str().unwrap();
        data.insert(file.to_owned(), json!(read(dir.join(file))));
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
}

/// A patch applies to the resource its `target` names, or (strategic merge) the one with the
/// patch's own kind and name; a patch that matches nothing fails the render.
fn apply_patch(resources: &mut [Value], dir: &Path, patch: &Value) {
    let file = text(patch, "/path");
    let body = yaml_file(dir.join(file)).remove(0);
    let target = if patch["target"].is_object() { &patch["target"] } else { &body["metadata"] };
    let kind = target["kind"].as_str().or(body["kind"].as_str()).unwrap();
    let name = text(target, "/name");
    let resource = resources
        .iter_mut()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{file} patches {kind}/{name}, which nothing defines"));
    match &body {
        Value::Array(operations) => operations.iter().for_each(|op| json_patch(resource, op, file)),
        _ => merge(resource, &body),
    }
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                assert!(!key.starts_with('$'), "strategic-merge directive {key} is not supported here");
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => drop(base.insert(key.clone(), value.clone())),
                }
            }
        }
        (Value::Array(base), Value::Array(patch)) if patch.iter().all(|item| item["name"].is_string()) => {
            for item in patch {
                match base.iter_mut().find(|existing| existing["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn json_patch(resource: &mut Value, operation: &Value, file: &str) {
    let path = text(operation, "/path");
    let (parent, last) = path.rsplit_once('/').unwrap();
    let container = resource.pointer_mut(parent).unwrap_or_else(|| panic!("{file}: {parent} does not exist"));
    let value = operation["value"].clone();
    match (text(operation, "/op"), container) {
        ("add", Value::Array(items)) if last == "-" => items.push(value),
        ("add", Value::Array(items)) => items.insert(last.parse().unwrap(), value),
        ("add", Value::Object(map)) => drop(map.insert(last.to_owned(), value)),
        ("replace", container) => {
            let slot = container.pointer_mut(&format!("/{last}"));
            *slot.unwrap_or_else(|| panic!("{file}: replace of missing {path}")) = value;
        }
        ("remove", Value::Object(map)) => assert!(map.remove(last).is_some(), "{file}: remove of missing {path}"),
        ("remove", Value::Array(items)) => drop(items.remove(last.parse().unwrap())),
        (op, _) => panic!("{file}: JSON patch operation {op} on {path} is not supported here"),
    }
}

fn set_image(resources: &mut [Value], image: &Value) {
    let name = text(image, "/name");
    let new = format!("{}:{}", text(image, "/newName"), text(image, "/newTag"));
    let mut replaced = 0;
    for resource in resources.iter_mut().filter(|r| r["kind"] == "Deployment") {
        let containers = resource.pointer_mut("/spec/template/spec/containers").unwrap().as_array_mut().unwrap();
        for container in containers.iter_mut().filter(|c| c["image"] == name) {
            container["image"] = json!(new);
            replaced += 1;
        }
    }
    assert!(replaced > 0, "images: no container uses {name}");
}
