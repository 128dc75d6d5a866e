//! `cefgate dcr-template`: the ARM template of a data collection rule whose input streams
//! declare exactly the columns cefgate sends (the Logs Ingestion API silently drops columns a
//! stream does not declare), routed to the built-in `CommonSecurityLog` and `Syslog` tables
//! or to custom `_CL` tables, with the role assignment the sending identity needs.
//!
//! The column lists are the row builder's own ([`crate::record::schema`], generated from
//! `grammars/row-columns.tsv` and `grammars/cef-fields.tsv`), so the template cannot drift
//! from the rows.

use serde_json::{Value, json};

use crate::record::{ColumnType, schema};

/// The nested deployment that creates custom tables in the workspace's resource group.
const TABLES_DEPLOYMENT: &str = "cefgate-tables";

/// Monitoring Metrics Publisher: the role that may ingest through a DCR.
pub const MONITORING_METRICS_PUBLISHER: &str = "3913510d-42f4-4e42-8a64-420c390055eb";

/// Where the rows land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `Microsoft-CommonSecurityLog` and `Microsoft-Syslog` (needs Sentinel on the workspace).
    BuiltIn,
    /// `CefGate_CommonSecurityLog_CL` and `CefGate_Syslog_CL`, created by the template.
    CustomTables,
}

/// Every column of a CommonSecurityLog row cefgate can send, with its type.
pub fn common_security_log_columns() -> Vec<(&'static str, ColumnType)> {
    schema::common_security_log()
}

/// Every column of a Syslog row cefgate can send, with its type.
pub fn syslog_columns() -> Vec<(&'static str, ColumnType)> {
    schema::syslog()
}

fn declare(columns: &[(&str, ColumnType)]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|(name, t)| json!({"name": name, "type": t.name()}))
            .collect(),
    )
}

/// The built-in tables have no `CefgateDiagnostics`, `CefgateEventId` or
/// `CefgateTimeGenerated`: fold them into `AdditionalExtensions` (CommonSecurityLog) or drop
/// them (Syslog, which has no catch-all).
/// Each is appended with a `;` only when something is already there, using nothing but
/// `iif`, `isempty` and `strcat` (transformations support no `trim` or `replace_regex`).
/// `SourceSystem` is the constant Microsoft's agent stores (`OpsManager` in CommonSecurityLog,
/// `Linux` in Syslog): set here rather than sent in every row (fixtures/README.md).
const CSL_TRANSFORM: &str = "source \
| extend AdditionalExtensions = strcat(AdditionalExtensions, iif(isempty(CefgateEventId), '', strcat(iif(isempty(AdditionalExtensions), '', ';'), 'cefgateEventId=', CefgateEventId))) \
| extend AdditionalExtensions = strcat(AdditionalExtensions, iif(isempty(CefgateDiagnostics), '', strcat(iif(isempty(AdditionalExtensions), '', ';'), 'cefgateDiagnostics=', CefgateDiagnostics))) \
| extend AdditionalExtensions = strcat(AdditionalExtensions, iif(isnull(CefgateTimeGenerated), '', strcat(iif(isempty(AdditionalExtensions), '', ';'), 'cefgateTimeGenerated=', tostring(CefgateTimeGenerated)))) \
| extend SourceSystem = 'OpsManager' \
| project-away CefgateDiagnostics, CefgateEventId, CefgateTimeGenerated";
/// Syslog has no catch-all column: a receive time kept because Azure replaces an old
/// `TimeGenerated` goes to `EventTime` when the message carried no time of its own.
const SYSLOG_TRANSFORM: &str = "source \
| extend EventTime = iif(isnull(EventTime), CefgateTimeGenerated, EventTime) \
| extend SourceSystem = 'Linux' \
| project-away CefgateDiagnostics, CefgateEventId, CefgateTimeGenerated";

/// The KQL a transformation may use, from `grammars/dcr-transform-kql.tsv`.
const SUPPORTED_KQL: &str = include_str!("../grammars/dcr-transform-kql.tsv");

fn supported(kind: &str, name: &str) -> bool {
    SUPPORTED_KQL
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .any(|(k, n)| k == kind && n == name)
}

/// What in `transform` a data collection rule would refuse: a source other than `source` or
/// `print`, a tabular operator or a function that is not on Microsoft's list. Strings are
/// skipped; a function is a name followed by `(`.
pub fn unsupported_kql(transform: &str) -> Vec<String> {
    let mut words: Vec<(String, Option<char>)> = Vec::new();
    let mut chars = transform.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                // A string literal: skip to its end, honouring backslash escapes.
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '|' => words.push(("|".into(), None)),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == '-' {
                        word.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                while chars.peek().is_some_and(|d| d.is_whitespace()) {
                    chars.next();
                }
                words.push((word, chars.peek().copied()));
            }
            _ => {}
        }
    }
    let mut refused = Vec::new();
    match words.first() {
        Some((w, _)) if supported("source", w) || supported("statement", w) => {}
        Some((w, _)) => refused.push(format!("source {w}")),
        None => refused.push("an empty transform".into()),
    }
    for (i, (word, next)) in words.iter().enumerate() {
        if word == "|" {
            match words.get(i + 1) {
                Some((op, _)) if supported("operator", op) => {}
                Some((op, _)) => refused.push(format!("operator {op}")),
                None => refused.push("a pipe with no operator".into()),
            }
        } else if *next == Some('(') && !supported("function", word) {
            refused.push(format!("function {word}"));
        }
    }
    refused
}

/// The ARM template. `cef_stream` and `syslog_stream` are the input stream names the
/// `[output]` section uses.
pub fn template(destination: Destination, cef_stream: &str, syslog_stream: &str) -> Value {
    let csl = common_security_log_columns();
    let syslog = syslog_columns();
    let (csl_out, syslog_out, csl_kql, syslog_kql) = match destination {
        Destination::BuiltIn => (
            "Microsoft-CommonSecurityLog".to_string(),
            "Microsoft-Syslog".to_string(),
            CSL_TRANSFORM,
            SYSLOG_TRANSFORM,
        ),
        Destination::CustomTables => (
            "Custom-CefGate_CommonSecurityLog_CL".to_string(),
            "Custom-CefGate_Syslog_CL".to_string(),
            "source",
            "source",
        ),
    };
    let dcr_id = "[resourceId('Microsoft.Insights/dataCollectionRules', parameters('dataCollectionRuleName'))]";
    let parameters = json!({
        "dataCollectionRuleName": {"type": "string", "defaultValue": "cefgate"},
        "location": {"type": "string", "metadata": {"description": "The Log Analytics workspace's region (a data collection rule must be in its workspace's region)"}},
        "workspaceResourceId": {"type": "string", "metadata": {"description": "Resource ID of the Log Analytics workspace"}},
        "principalId": {"type": "string", "metadata": {"description": "Object ID of the service principal or managed identity cefgate signs in as"}},
        "principalType": {"type": "string", "defaultValue": "ServicePrincipal", "allowedValues": ["ServicePrincipal", "User", "Group"]}
    });
    let mut resources = Vec::new();
    let mut depends = Vec::new();
    if destination == Destination::CustomTables {
        // Tables are resources of the workspace, which may live in another resource group
        // (or subscription): a nested deployment scoped to the workspace's own group creates
        // them, its name and group read from workspaceResourceId.
        let tables: Vec<Value> = [
            ("CefGate_CommonSecurityLog_CL", &csl),
            ("CefGate_Syslog_CL", &syslog),
        ]
        .into_iter()
        .map(|(table, columns)| {
            json!({
                "type": "Microsoft.OperationalInsights/workspaces/tables",
                "apiVersion": "2022-10-01",
                "name": format!("[concat(parameters('workspaceName'), '/{table}')]"),
                "properties": {"schema": {"name": table, "columns": declare(columns)}, "retentionInDays": 90}
            })
        })
        .collect();
        depends.push(format!(
            "[resourceId(split(parameters('workspaceResourceId'), '/')[2], split(parameters('workspaceResourceId'), '/')[4], 'Microsoft.Resources/deployments', '{TABLES_DEPLOYMENT}')]"
        ));
        resources.push(json!({
            "type": "Microsoft.Resources/deployments",
            "apiVersion": "2022-09-01",
            "name": TABLES_DEPLOYMENT,
            "subscriptionId": "[split(parameters('workspaceResourceId'), '/')[2]]",
            "resourceGroup": "[split(parameters('workspaceResourceId'), '/')[4]]",
            "properties": {
                "mode": "Incremental",
                "expressionEvaluationOptions": {"scope": "inner"},
                "parameters": {"workspaceName": {"value": "[last(split(parameters('workspaceResourceId'), '/'))]"}},
                "template": {
                    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                    "contentVersion": "1.0.0.0",
                    "parameters": {"workspaceName": {"type": "string"}},
                    "resources": tables
                }
            }
        }));
    }
    resources.push(json!({
        "type": "Microsoft.Insights/dataCollectionRules",
        "apiVersion": "2023-03-11",
        "name": "[parameters('dataCollectionRuleName')]",
        "location": "[parameters('location')]",
        "kind": "Direct",
        "dependsOn": depends,
        "properties": {
            "description": "cefgate: CEF and syslog rows from cefgate's logs-ingestion output",
            "streamDeclarations": {
                cef_stream: {"columns": declare(&csl)},
                syslog_stream: {"columns": declare(&syslog)}
            },
            "destinations": {"logAnalytics": [{"name": "workspace", "workspaceResourceId": "[parameters('workspaceResourceId')]"}]},
            "dataFlows": [
                {"streams": [cef_stream], "destinations": ["workspace"], "transformKql": csl_kql, "outputStream": csl_out},
                {"streams": [syslog_stream], "destinations": ["workspace"], "transformKql": syslog_kql, "outputStream": syslog_out}
            ]
        }
    }));
    resources.push(json!({
        "type": "Microsoft.Authorization/roleAssignments",
        "apiVersion": "2022-04-01",
        "name": format!("[guid({dcr_id}, parameters('principalId'), '{MONITORING_METRICS_PUBLISHER}')]", dcr_id = dcr_id.trim_start_matches('[').trim_end_matches(']')),
        "scope": "[format('Microsoft.Insights/dataCollectionRules/{0}', parameters('dataCollectionRuleName'))]",
        "dependsOn": [dcr_id],
        "properties": {
            "roleDefinitionId": format!("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{MONITORING_METRICS_PUBLISHER}')]"),
            "principalId": "[parameters('principalId')]",
            "principalType": "[parameters('principalType')]",
            "description": "cefgate may send rows through this data collection rule (Monitoring Metrics Publisher)"
        }
    }));
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": parameters,
        "resources": resources,
        "outputs": {
            "dcr_id": {"type": "string", "value": format!("[reference({}, '2023-03-11').immutableId]", dcr_id.trim_start_matches('[').trim_end_matches(']'))},
            "endpoint": {"type": "string", "value": format!("[reference({}, '2023-03-11').endpoints.logsIngestion]", dcr_id.trim_start_matches('[').trim_end_matches(']'))},
            "cef_stream": {"type": "string", "value": cef_stream},
            "syslog_stream": {"type": "string", "value": syslog_stream}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_template_routes_to_sentinel_tables_with_the_role() {
        let t = template(
            Destination::BuiltIn,
            "Custom-CefGate_CommonSecurityLog",
            "Custom-CefGate_Syslog",
        );
        let dcr = &t["resources"][0];
        assert_eq!(dcr["kind"], "Direct");
        let flows = dcr["properties"]["dataFlows"].as_array().unwrap();
        assert_eq!(flows[0]["outputStream"], "Microsoft-CommonSecurityLog");
        assert_eq!(flows[1]["outputStream"], "Microsoft-Syslog");
        let role = &t["resources"][1];
        assert!(
            role["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .contains(MONITORING_METRICS_PUBLISHER)
        );
        let columns =
            dcr["properties"]["streamDeclarations"]["Custom-CefGate_CommonSecurityLog"]["columns"]
                .as_array()
                .unwrap();
        let port = columns
            .iter()
            .find(|c| c["name"] == "DestinationPort")
            .unwrap();
        assert_eq!(port["type"], "int");
        let names: std::collections::HashSet<_> = columns
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), columns.len(), "no column declared twice");
    }

    fn dcr(t: &Value) -> &Value {
        t["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Microsoft.Insights/dataCollectionRules")
            .unwrap()
    }

    #[test]
    fn custom_table_template_creates_the_tables_in_the_workspace_group() {
        let t = template(Destination::CustomTables, "Custom-A", "Custom-B");
        let nested = &t["resources"][0];
        assert_eq!(nested["type"], "Microsoft.Resources/deployments");
        assert_eq!(
            nested["resourceGroup"],
            "[split(parameters('workspaceResourceId'), '/')[4]]"
        );
        let tables = nested["properties"]["template"]["resources"]
            .as_array()
            .unwrap();
        assert_eq!(tables.len(), 2);
        assert_eq!(
            tables[0]["type"],
            "Microsoft.OperationalInsights/workspaces/tables"
        );
        assert_eq!(
            dcr(&t)["properties"]["dataFlows"][0]["outputStream"],
            "Custom-CefGate_CommonSecurityLog_CL"
        );
        assert!(
            dcr(&t)["dependsOn"][0]
                .as_str()
                .unwrap()
                .contains(TABLES_DEPLOYMENT)
        );
        assert!(
            t["parameters"].get("workspaceName").is_none(),
            "no second name to pass"
        );
    }

    #[test]
    fn the_region_is_asked_for_not_taken_from_the_resource_group() {
        for d in [Destination::BuiltIn, Destination::CustomTables] {
            let t = template(d, "Custom-A", "Custom-B");
            assert!(t["parameters"]["location"].get("defaultValue").is_none());
            assert_eq!(dcr(&t)["location"], "[parameters('location')]");
        }
    }

    #[test]
    fn every_transform_uses_only_supported_kql() {
        for d in [Destination::BuiltIn, Destination::CustomTables] {
            let t = template(d, "Custom-A", "Custom-B");
            for flow in dcr(&t)["properties"]["dataFlows"].as_array().unwrap() {
                let kql = flow["transformKql"].as_str().unwrap();
                assert_eq!(unsupported_kql(kql), Vec::<String>::new(), "{kql}");
            }
        }
    }

    #[test]
    fn the_kql_check_refuses_what_transformations_do_not_support() {
        let old =
            "source | extend A = trim(';', replace_regex(A, ';;+', ';')) | summarize count() by B";
        assert_eq!(
            unsupported_kql(old),
            [
                "function trim",
                "function replace_regex",
                "operator summarize",
                "function count"
            ]
        );
        assert_eq!(
            unsupported_kql("source | where A == 'trim(x)' | extend B = iif(isempty(C), '', C)"),
            Vec::<String>::new(),
            "text in strings is no call"
        );
        assert_eq!(unsupported_kql("T | project A"), ["source T"]);
    }
}
