//! The contract, protected: `broker.proto` must stay backward compatible with the released
//! v1, whose descriptor set is committed as `proto/baseline/credbroker-v1.binpb`.
//!
//! Clients in other languages were generated from v1 and keep running unchanged, so nothing
//! they rely on may change: no message, enum value, service or RPC removed; no field
//! renumbered, renamed, retyped, moved in or out of a oneof, or changed between singular and
//! repeated; no RPC's request, response or streaming changed. Additions are fine.
//!
//! The current descriptor is the one the build embeds (`pb::FILE_DESCRIPTOR_SET`, compiled by
//! protox from `proto/`), so the check sees exactly what the server serves. The baseline is
//! regenerated only for a new major version, with
//! `protoc -I proto -o proto/baseline/credbroker-v1.binpb credbroker/v1/broker.proto`.

use credbroker::grpc::pb;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet, ServiceDescriptorProto,
};
use std::collections::HashMap;

const BASELINE: &[u8] = include_bytes!("../../proto/baseline/credbroker-v1.binpb");

/// Every message, enum and service of the credbroker packages, by full name.
#[derive(Default)]
struct Contract {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, EnumDescriptorProto>,
    services: HashMap<String, ServiceDescriptorProto>,
}

impl Contract {
    fn of(set: &FileDescriptorSet) -> Contract {
        let mut contract = Contract::default();
        for file in set.file.iter().filter(|f| f.package().starts_with("credbroker.")) {
            let prefix = format!(".{}", file.package());
            contract.add_messages(&prefix, &file.message_type);
            contract.add_enums(&prefix, &file.enum_type);
            for service in &file.service {
                contract.services.insert(format!("{prefix}.{}", service.name()), service.clone());
            }
        }
        contract
    }

    fn add_messages(&mut self, prefix: &str, messages: &[DescriptorProto]) {
        for message in messages {
            let name = format!("{prefix}.{}", message.name());
            self.add_messages(&name, &message.nested_type);
            self.add_enums(&name, &message.enum_type);
            self.messages.insert(name, message.clone());
        }
    }

    fn add_enums(&mut self, prefix: &str, enums: &[EnumDescriptorProto]) {
        for e in enums {
            self.enums.insert(format!("{prefix}.{}", e.name()), e.clone());
        }
    }
}

/// What a field looks like on the wire and in generated code.
fn field_shape(message: &DescriptorProto, field: &FieldDescriptorProto) -> String {
    let oneof = field.oneof_index.map(|i| message.oneof_decl[i as usize].name().to_owned());
    let label = if field.label() == Label::Repeated { "repeated" } else { "singular" };
    let r#type = match field.r#type() {
        Type::Message | Type::Enum => field.type_name().to_owned(),
        other => other.as_str_name().to_owned(),
    };
    format!("{} {label} {type} oneof={oneof:?}", field.name(), type = r#type)
}

/// Every change from `baseline` to `current` that breaks a v1 client, in words.
fn breaking_changes(baseline: &FileDescriptorSet, current: &FileDescriptorSet) -> Vec<String> {
    let (old, new) = (Contract::of(baseline), Contract::of(current));
    let mut problems = Vec::new();
    for (name, message) in &old.messages {
        match new.messages.get(name) {
            None => problems.push(format!("message {name} was removed")),
            Some(now) => problems.extend(field_changes(name, message, now)),
        }
    }
    for (name, e) in &old.enums {
        match new.enums.get(name) {
            None => problems.push(format!("enum {name} was removed")),
            Some(now) => problems.extend(enum_changes(name, e, now)),
        }
    }
    for (name, service) in &old.services {
        match new.services.get(name) {
            None => problems.push(format!("service {name} was removed")),
            Some(now) => problems.extend(method_changes(name, service, now)),
        }
    }
    problems.sort();
    problems
}

fn field_changes(name: &str, old: &DescriptorProto, new: &DescriptorProto) -> Vec<String> {
    let now: HashMap<i32, &FieldDescriptorProto> = new.field.iter().map(|f| (f.number(), f)).collect();
    old.field
        .iter()
        .filter_map(|field| {
            let was = field_shape(old, field);
            match now.get(&field.number()) {
                None => Some(format!("{name}: field {} = {} was removed", field.name(), field.number())),
                Some(f) if field_shape(new, f) != was => {
                    Some(format!("{name}: field {} changed from `{was}` to `{}`", field.number(), field_shape(new, f)))
                }
                Some(_) => None,
            }
        })
        .collect()
}

fn enum_changes(name: &str, old: &EnumDescriptorProto, new: &EnumDescriptorProto) -> Vec<String> {
    let now: HashMap<i32, &str> = new.value.iter().map(|v| (v.number(), v.name())).collect();
    old.value
        .iter()
        .filter(|v| now.get(&v.number()) != Some(&v.name()))
        .map(|v| format!("{name}: value {} = {} was removed or renamed", v.name(), v.number()))
        .collect()
}

fn method_changes(name: &str, old: &ServiceDescriptorProto, new: &ServiceDescriptorProto) -> Vec<String> {
    let signature = |m: &prost_types::MethodDescriptorProto| {
        format!(
            "({}{}) returns ({}{})",
            stream(m.client_streaming()),
            m.input_type(),
            stream(m.server_streaming()),
            m.output_type()
        )
    };
    let now: HashMap<&str, String> = new.method.iter().map(|m| (m.name(), signature(m))).collect();
    old.method
        .iter()
        .filter_map(|m| match now.get(m.name()) {
            None => Some(format!("{name}: rpc {} was removed", m.name())),
            Some(s) if *s != signature(m) => {
                Some(format!("{name}: rpc {} changed from {} to {s}", m.name(), signature(m)))
            }
            Some(_) => None,
        })
        .collect()
}

fn stream(streaming: bool) -> &'static str {
    if streaming { "stream " } else { "" }
}

fn baseline() -> FileDescriptorSet {
    FileDescriptorSet::decode(BASELINE).expect("the committed baseline is a descriptor set")
}

fn current() -> FileDescriptorSet {
    FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes")
}

/// Applies `change` to the message `name` (top level) of the current contract.
fn mutated(name: &str, change: impl FnOnce(&mut DescriptorProto)) -> FileDescriptorSet {
    let mut set = current();
    let file = set.file.iter_mut().find(|f| f.package() == "credbroker.v1").unwrap();
    change(file.message_type.iter_mut().find(|m| m.name() == name).unwrap());
    set
}

fn field<'a>(message: &'a mut DescriptorProto, name: &str) -> &'a mut FieldDescriptorProto {
    message.field.iter_mut().find(|f| f.name() == name).unwrap()
}

#[test]
fn contract_proto_is_backward_compatible_with_the_released_v1() {
    let problems = breaking_changes(&baseline(), &current());
    assert!(problems.is_empty(), "broker.proto breaks v1 clients:\n{}", problems.join("\n"));
    // The check looked at something: the whole v1 surface is in the baseline.
    let v1 = Contract::of(&baseline());
    assert_eq!(v1.services.len(), 2);
    assert!(v1.messages.contains_key(".credbroker.v1.GetAuthorizationResponse"));
}

#[test]
fn contract_check_flags_renumbered_renamed_retyped_and_removed_fields() {
    let cases: Vec<(FileDescriptorSet, &str)> = vec![
        (mutated("GetAuthorizationRequest", |m| field(m, "subject").number = Some(9)), "field subject = 2 was removed"),
        (
            mutated("GetAuthorizationRequest", |m| field(m, "subject").name = Some("who".into())),
            "changed from `subject",
        ),
        (
            mutated("Header", |m| field(m, "value").r#type = Some(Type::Bytes as i32)),
            "changed from `value singular TYPE_STRING",
        ),
        (
            mutated("GetAuthorizationResponse", |m| field(m, "headers").label = Some(Label::Optional as i32)),
            "`headers repeated",
        ),
        (mutated("PutCredentialRequest", |m| field(m, "client_number").oneof_index = None), "oneof=Some(\"secret\")"),
        (mutated("CredentialRef", |m| m.field.retain(|f| f.name() != "subject")), "field subject = 2 was removed"),
    ];
    for (set, expected) in cases {
        let problems = breaking_changes(&baseline(), &set);
        assert!(problems.iter().any(|p| p.contains(expected)), "expected {expected:?} in {problems:?}");
    }
}

#[test]
fn contract_check_flags_removed_or_changed_rpcs_messages_and_enum_values() {
    let mut set = current();
    let file = set.file.iter_mut().find(|f| f.package() == "credbroker.v1").unwrap();
    file.service[0].method.retain(|m| m.name() != "ReportRejected");
    file.service[1].method.iter_mut().find(|m| m.name() == "ListCredentials").unwrap().server_streaming = Some(true);
    file.message_type.retain(|m| m.name() != "BroToken");
    file.enum_type[0].value.retain(|v| v.number() != 5);
    let problems = breaking_changes(&baseline(), &set);
    for expected in [
        "rpc ReportRejected was removed",
        "rpc ListCredentials changed from (.credbroker.v1.ListCredentialsRequest) returns (.credbroker.v1.ListCredentialsResponse) \
         to (.credbroker.v1.ListCredentialsRequest) returns (stream .credbroker.v1.ListCredentialsResponse)",
        "message .credbroker.v1.BroToken was removed",
        "value CREDENTIAL_STATE_REVOKED = 5 was removed or renamed",
    ] {
        assert!(problems.iter().any(|p| p.ends_with(expected)), "expected {expected:?} in {problems:?}");
    }
}

#[test]
fn contract_check_allows_new_fields_messages_and_rpcs() {
    let mut set = mutated("GetAuthorizationRequest", |m| {
        let mut extra = m.field[0].clone();
        extra.name = Some("audience".into());
        extra.number = Some(42);
        m.field.push(extra);
    });
    let file = set.file.iter_mut().find(|f| f.package() == "credbroker.v1").unwrap();
    let mut rpc = file.service[1].method[0].clone();
    rpc.name = Some("Rewrap".into());
    file.service[1].method.push(rpc);
    let mut message = file.message_type[0].clone();
    message.name = Some("RewrapRequest".into());
    file.message_type.push(message);
    assert_eq!(breaking_changes(&baseline(), &set), Vec::<String>::new());
}
