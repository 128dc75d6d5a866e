//! `cefgate dcr-template`: prints the ARM template of the data collection rule the
//! logs-ingestion output posts through, with stream names matching the output's, so that
//! the rule and the sender cannot disagree about columns.

#[derive(clap::Args)]
pub struct Args {
    /// Route to custom CefGate_*_CL tables (created by the template) instead of the
    /// built-in CommonSecurityLog and Syslog tables.
    #[arg(long)]
    custom_tables: bool,
    /// Input stream for CEF rows (the output's cef_stream).
    #[arg(long, default_value = "Custom-CefGate_CommonSecurityLog")]
    cef_stream: String,
    /// Input stream for syslog rows (the output's syslog_stream).
    #[arg(long, default_value = "Custom-CefGate_Syslog")]
    syslog_stream: String,
}

pub fn execute(args: &Args) {
    let destination = if args.custom_tables {
        cefgate::dcr::Destination::CustomTables
    } else {
        cefgate::dcr::Destination::BuiltIn
    };
    let t = cefgate::dcr::template(destination, &args.cef_stream, &args.syslog_stream);
    println!("{}", serde_json::to_string_pretty(&t).expect("JSON"));
}
