//! The two GraphQL operations a run needs: `UpsertBucket` (create or update the run, its
//! config and tags) and `CreateRunFiles` (upload URLs for media and artifacts).

use serde_json::{json, Value};

use crate::backends::wandb::run::RunIdent;

const UPSERT_BUCKET: &str = "mutation UpsertBucket($name: String, $project: String, \
$entity: String, $displayName: String, $notes: String, $groupName: String, $jobType: String, \
$host: String, $tags: [String!], $config: JSONString) { upsertBucket(input: {name: $name, \
modelName: $project, entityName: $entity, displayName: $displayName, notes: $notes, \
groupName: $groupName, jobType: $jobType, host: $host, tags: $tags, config: $config}) { \
bucket { name displayName historyLineCount project { name entity { name } } } inserted } }";

const CREATE_RUN_FILES: &str = "mutation CreateRunFiles($entity: String!, $project: String!, \
$run: String!, $files: [String!]!) { createRunFiles(input: {entityName: $entity, \
projectName: $project, runName: $run, files: $files}) { runID uploadHeaders \
files { name uploadUrl } } }";

/// The `UpsertBucket` request body. `config` is W&B's config JSON *string*
/// (`{"key": {"value": v}}`).
pub fn upsert_bucket(ident: &RunIdent, config: &str) -> Value {
    json!({
        "operationName": "UpsertBucket",
        "query": UPSERT_BUCKET,
        "variables": {
            "name": ident.run_id,
            "project": ident.project,
            "entity": ident.entity,
            "displayName": ident.display_name,
            "notes": ident.notes,
            "groupName": ident.group,
            "jobType": ident.job_type,
            "host": ident.host,
            "tags": ident.tags,
            "config": config,
        }
    })
}

/// What the server says about the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// The entity the run lives in (the key's default when none was asked for).
    pub entity: String,
    /// The project's name.
    pub project: String,
    /// History lines the server already has (a resumed run continues after them).
    pub history_line_count: u64,
}

/// Reads an `UpsertBucket` answer.
///
/// # Errors
/// GraphQL errors or a missing bucket, as text for the user.
pub fn parse_bucket(reply: &Value) -> Result<Bucket, String> {
    graphql_errors(reply)?;
    let bucket = &reply["data"]["upsertBucket"]["bucket"];
    let project = bucket["project"]["name"]
        .as_str()
        .ok_or("the answer to UpsertBucket has no project")?;
    let entity = bucket["project"]["entity"]["name"]
        .as_str()
        .ok_or("the answer to UpsertBucket has no entity")?;
    Ok(Bucket {
        entity: entity.to_string(),
        project: project.to_string(),
        history_line_count: bucket["historyLineCount"].as_u64().unwrap_or(0),
    })
}

/// The `CreateRunFiles` request body.
pub fn create_run_files(entity: &str, project: &str, run: &str, files: &[String]) -> Value {
    json!({
        "operationName": "CreateRunFiles",
        "query": CREATE_RUN_FILES,
        "variables": {"entity": entity, "project": project, "run": run, "files": files}
    })
}

/// Where to `PUT` each file, and the headers to send with it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UploadUrls {
    /// `(file name, upload URL)`.
    pub files: Vec<(String, String)>,
    /// `(header, value)` pairs for every upload.
    pub headers: Vec<(String, String)>,
}

/// Reads a `CreateRunFiles` answer.
///
/// # Errors
/// GraphQL errors or a malformed answer, as text.
pub fn parse_upload_urls(reply: &Value) -> Result<UploadUrls, String> {
    graphql_errors(reply)?;
    let created = &reply["data"]["createRunFiles"];
    let files = created["files"]
        .as_array()
        .ok_or("the answer to CreateRunFiles has no files")?
        .iter()
        .filter_map(|f| {
            Some((
                f["name"].as_str()?.to_string(),
                f["uploadUrl"].as_str()?.to_string(),
            ))
        })
        .collect();
    let headers = created["uploadHeaders"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    let (k, v) = h.as_str()?.split_once(':')?;
                    Some((k.trim().to_string(), v.trim().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(UploadUrls { files, headers })
}

fn graphql_errors(reply: &Value) -> Result<(), String> {
    match reply["errors"].as_array() {
        Some(errors) if !errors.is_empty() => Err(errors
            .iter()
            .map(|e| e["message"].as_str().unwrap_or("unknown error").to_string())
            .collect::<Vec<_>>()
            .join("; ")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_reply_and_errors() {
        let ok = json!({"data": {"upsertBucket": {"bucket": {"name": "abc",
            "historyLineCount": 7, "project": {"name": "p", "entity": {"name": "me"}}}}}});
        assert_eq!(
            parse_bucket(&ok).unwrap(),
            Bucket {
                entity: "me".into(),
                project: "p".into(),
                history_line_count: 7
            }
        );
        let err = json!({"errors": [{"message": "permission denied"}]});
        assert_eq!(parse_bucket(&err).unwrap_err(), "permission denied");
    }

    #[test]
    fn upload_urls_and_headers() {
        let reply = json!({"data": {"createRunFiles": {"runID": "x",
            "uploadHeaders": ["X-Token: t"], "files": [{"name": "a.png", "uploadUrl": "http://u/a"}]}}});
        let urls = parse_upload_urls(&reply).unwrap();
        assert_eq!(
            urls.files,
            [("a.png".to_string(), "http://u/a".to_string())]
        );
        assert_eq!(urls.headers, [("X-Token".to_string(), "t".to_string())]);
    }

    #[test]
    fn upsert_sends_config_as_a_json_string() {
        let ident = RunIdent {
            run_id: "r".into(),
            project: "p".into(),
            ..RunIdent::default()
        };
        let body = upsert_bucket(&ident, "{\"lr\":{\"value\":0.1}}");
        assert_eq!(body["variables"]["config"], "{\"lr\":{\"value\":0.1}}");
        assert_eq!(body["variables"]["entity"], Value::Null);
        assert_eq!(body["operationName"], "UpsertBucket");
    }
}
