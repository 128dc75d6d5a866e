//! Decode+map and decode+map+JSON throughput on typical firewall lines.
//!
//! `cargo bench --bench decode`; criterion reports the time per line (its median is in the
//! "time" column); lines/s = 1 s / that time.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use cefgate::record::write_json;

mod common;

/// ~1.2 KB: a proxy event with a long URL, escapes and many custom keys behind RFC 5424.
fn rfc5424_line() -> String {
    let mut line = String::from(
        "<134>1 2026-11-26T09:59:58.123456+01:00 proxy-03.example.net ZscalerNSS 4242 web [meta sequenceId=\"1337\"] CEF:0|Zscaler|NSSWeblog|6.1|Allowed|Allowed|3|",
    );
    line.push_str("act=Allowed reason=Allowed app=HTTPS dhost=www.example.com dst=93.184.216.34 src=10.20.30.40 sourceTranslatedAddress=198.51.100.10 in=48213 out=2201 request=https://www.example.com/search?q\\=cef+parser&lang\\=en&session\\=a1b2c3d4e5f6 requestClientApplication=Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 requestMethod=GET suser=jane.doe@example.com spriv=General Group cat=Professional Services cs1=Engineering cs1Label=dept cs2=Web Search cs2Label=urlsupercat cs3=allow-all cs3Label=urlpolicy cs4=None cs4Label=dlpengine cs5=TLSv1.3 cs5Label=clienttlsversion cs6=sha256 cs6Label=srvcertvalidationtype cn1=0 cn1Label=riskscore cn2=120 cn2Label=threatseverity fileType=None destinationServiceName=Google Search outcome=200 rt=Nov 26 2026 08:59:58 UTC ZscalerNSSWeblogLocation=Road Warrior ZscalerNSSWeblogDevice=LAPTOP-42 ZscalerNSSWeblogDeviceOS=Windows 11 ZscalerNSSWeblogOwner=jane.doe ZscalerNSSWeblogContentType=text/html ZscalerNSSWeblogUnscannable=None ZscalerNSSWeblogBwThrottle=NO msg=Request allowed by policy");
    line
}

/// ~500 B: a PAN-OS 10.2 TRAFFIC end log in its default CSV form behind an RFC 3164 header.
const PANOS_TRAFFIC_LINE: &str = "<14>Nov 26 09:58:01 PA-3220 1,2026/11/26 09:58:01,013201009876,TRAFFIC,end,2561,2026/11/26 09:58:01,10.20.1.15,203.0.113.80,198.51.100.4,203.0.113.80,allow-outbound-web,corp\\alice,,ssl,vsys1,trust,untrust,ethernet1/2,ethernet1/1,default,2026/11/26 09:58:01,412337,1,52144,443,28811,443,0x400053,tcp,allow,9812,2201,7611,24,2026/11/26 09:57:41,20,computer-and-internet-info,0,7345123987,0x0,10.0.0.0-10.255.255.255,United States,0,11,13,tcp-fin,0,0,0,0,,PA-3220,from-policy,,,0,,0,,N/A,0,0,0,0,,,,6f2c1b0e-4a3d-4f7e-9c21-0d8b5e7a1c33,0";

/// ~700 B: a FortiOS traffic forward log in its default key=value form behind a PRI.
const FORTIGATE_TRAFFIC_LINE: &str = "<189>date=2026-11-26 time=09:58:01 devname=\"FG100F\" devid=\"FG100FTK19000000\" eventtime=1764151081123456789 tz=\"+0100\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" vd=\"root\" srcip=10.1.1.5 srcport=51234 srcintf=\"port1\" srcintfrole=\"lan\" dstip=203.0.113.9 dstport=443 dstintf=\"wan1\" dstintfrole=\"wan\" sessionid=12345 proto=6 action=\"accept\" policyid=3 policytype=\"policy\" service=\"HTTPS\" trandisp=\"snat\" transip=198.51.100.2 transport=40001 duration=12 sentbyte=1234 rcvdbyte=5678 sentpkt=10 rcvdpkt=12 appcat=\"unscanned\"";

/// ~250 B: a LEEF 2.0 intrusion event behind an RFC 3164 header.
const LEEF_LINE: &str = "<134>Nov 26 09:58:01 ids01 LEEF:2.0|ExampleSec|Sensor|4.2|SIG-1001|0x09|src=10.1.1.5\tdst=203.0.113.9\tsrcPort=51234\tdstPort=443\tproto=6\tsev=8\tcat=intrusion\tsrcMAC=00:11:22:33:44:55\tdstMAC=66:77:88:99:aa:bb\tdevTime=1764151081000";

/// A plain syslog line of no listed format: what detection costs a line it turns away.
const PLAIN_SYSLOG_LINE: &str = "<38>Nov 26 09:59:58 web01 sshd[4242]: Accepted publickey for deploy from 10.1.2.3 port 52211 ssh2";

fn bench(c: &mut Criterion) {
    let builder = common::builder();
    let rx = common::reception();
    let long = rfc5424_line();
    let time = rx.time;
    let header = cefgate::decode::syslog::parse(PLAIN_SYSLOG_LINE, &time);
    c.bench_function("panos_detect_miss", |b| {
        b.iter(|| {
            black_box(cefgate::decode::panos::recognise(
                black_box(PLAIN_SYSLOG_LINE),
                black_box(&header),
            ))
        })
    });
    c.bench_function("fortigate_detect_miss", |b| {
        b.iter(|| {
            black_box(cefgate::decode::fortigate::recognise(
                black_box(PLAIN_SYSLOG_LINE),
                black_box(&header),
            ))
        })
    });
    c.bench_function("leef_detect_miss", |b| {
        b.iter(|| {
            black_box(cefgate::decode::leef::recognise(
                black_box(PLAIN_SYSLOG_LINE),
                black_box(&header),
            ))
        })
    });
    for (name, line) in [
        ("rfc3164_400B", common::FIREWALL_LINE),
        ("rfc5424_1200B", long.as_str()),
        ("panos_traffic_500B", PANOS_TRAFFIC_LINE),
        ("fortigate_traffic_700B", FORTIGATE_TRAFFIC_LINE),
        ("leef_250B", LEEF_LINE),
        ("syslog_plain_100B", PLAIN_SYSLOG_LINE),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("decode_map", |b| {
            b.iter(|| black_box(builder.build(black_box(line), false, &rx)))
        });
        let mut out = Vec::with_capacity(4096);
        group.bench_function("decode_map_json", |b| {
            b.iter(|| {
                out.clear();
                let row = builder.build(black_box(line), false, &rx);
                write_json(&row, &mut out);
                black_box(out.len())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
