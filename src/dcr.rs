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

/// The built-in tables have no `CefgateDiagnostics` or `CefgateEventId`: fold them into
/// `AdditionalExtensions` (CommonSecurityLog) or drop them (Syslog, which has no catch-all).
const CSL_TRANSFORM: &str = "source | extend AdditionalExtensions = strcat_delim(';', AdditionalExtensions, iif(isempty(CefgateEventId), '', strcat('cefgateEventId=', CefgateEventId)), iif(isempty(CefgateDiagnostics), '', strcat('cefgateDiagnostics=', CefgateDiagnostics))) | extend AdditionalExtensions = trim(';', replace_regex(AdditionalExtensions, ';;+', ';')) | project-away CefgateDiagnostics, CefgateEventId";
const SYSLOG_TRANSFORM: &str = "source | project-away CefgateDiagnostics, CefgateEventId";

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
    let mut parameters = json!({
        "dataCollectionRuleName": {"type": "string", "defaultValue": "cefgate"},
        "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
        "workspaceResourceId": {"type": "string", "metadata": {"description": "Resource ID of the Log Analytics workspace"}},
        "principalId": {"type": "string", "metadata": {"description": "Object ID of the service principal or managed identity cefgate signs in as"}},
        "principalType": {"type": "string", "defaultValue": "ServicePrincipal", "allowedValues": ["ServicePrincipal", "User", "Group"]}
    });
    let mut resources = Vec::new();
    let mut depends = Vec::new();
    if destination == Destination::CustomTables {
        parameters["workspaceName"] =
            json!({"type": "string", "metadata": {"description": "Name of the same workspace"}});
        for (table, columns) in [
            ("CefGate_CommonSecurityLog_CL", &csl),
            ("CefGate_Syslog_CL", &syslog),
        ] {
            let name = format!("[concat(parameters('workspaceName'), '/{table}')]");
            depends.push(format!(
                "[resourceId('Microsoft.OperationalInsights/workspaces/tables', parameters('workspaceName'), '{table}')]"
            ));
            resources.push(json!({
                "type": "Microsoft.OperationalInsights/workspaces/tables",
                "apiVersion": "2022-10-01",
                "name": name,
                "properties": {"schema": {"name": table, "columns": declare(columns)}, "retentionInDays": 90}
            }));
        }
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

    #[test]
    fn custom_table_template_creates_the_tables() {
        let t = template(Destination::CustomTables, "Custom-A", "Custom-B");
        assert_eq!(
            t["resources"][0]["type"],
            "Microsoft.OperationalInsights/workspaces/tables"
        );
        assert_eq!(
            t["resources"][2]["properties"]["dataFlows"][0]["outputStream"],
            "Custom-CefGate_CommonSecurityLog_CL"
        );
        assert!(t["parameters"].get("workspaceName").is_some());
    }
}
