//! Every type's values in PostgreSQL's text output and binary send form (pairs produced by
//! PostgreSQL 15: `format('%s', x)` and `encode(<type>_send(x), 'hex')`) must give identical
//! Avro bytes, which decode with the column's own schema to the expected value.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;

use crate::kind::{ColumnKind, Raw, ValueError};
use crate::output::Output;
use crate::scratch::Scratch;
use crate::types::{BUILT_IN_ARRAYS, ElementType, NumericMode, TypeInfo, TypeOptions};

/// (type as SQL names it, text output, binary send form in hex, expected decoded value as
/// [`show`] prints it, then what the value left for the exact field as
/// `Exact::describe_value` prints it). Text-only types expect the text value, their binary
/// form being refused.
#[rustfmt::skip]
pub(crate) const PAIRS: &[(&str, &str, &str, &str)] = &[
    ("bool", "t", "01", "true"),
    ("bool", "f", "00", "false"),
    ("int2", "-32768", "8000", "-32768"),
    ("int2", "32767", "7fff", "32767"),
    ("int4", "2147483647", "7fffffff", "2147483647"),
    ("int4", "-2147483648", "80000000", "-2147483648"),
    ("int8", "-9223372036854775808", "8000000000000000", "-9223372036854775808"),
    ("int8", "9223372036854775807", "7fffffffffffffff", "9223372036854775807"),
    ("float4", "-1.5e-07", "b4210fb0", "-1.5e-7"),
    ("float4", "NaN", "7fc00000", "NaN"),
    ("float4", "Infinity", "7f800000", "inf"),
    ("float4", "-Infinity", "ff800000", "-inf"),
    ("float4", "3.4028235e+38", "7f7fffff", "3.4028235e38"),
    ("float8", "-Infinity", "fff0000000000000", "-inf"),
    ("float8", "NaN", "7ff8000000000000", "NaN"),
    ("float8", "1.7976931348623157e+308", "7fefffffffffffff", "1.7976931348623157e308"),
    ("float8", "0.1", "3fb999999999999a", "0.1"),
    ("float8", "-0", "8000000000000000", "-0.0"),
    ("float8", "5e-324", "0000000000000001", "5e-324"),
    ("numeric", "0", "0000000000000000", "{scale: 0, value: 0x00}"),
    ("numeric", "1.50", "000200000000000200011388", "{scale: 2, value: 0x0096}"),
    ("numeric", "-123456789.000000001", "0006000240000009000109291a850000000003e8", "{scale: 9, value: 0xfe4964b45a8b6dff}"),
    ("numeric", "0.0001", "0001ffff000000040001", "{scale: 4, value: 0x01}"),
    ("numeric", "1000000000000000000000000000000", "00010007000000000064", "{scale: 0, value: 0x0c9f2c9cd04674edea40000000}"),
    ("numeric", "NaN", "00000000c0000000", "{scale: -131072, value: 0x02} | exact NaN"),
    ("numeric", "Infinity", "00000000d0000020", "{scale: -131072, value: 0x01} | exact Infinity"),
    ("numeric", "-Infinity", "00000000f0000020", "{scale: -131072, value: 0xff} | exact -Infinity"),
    ("numeric(10,3)", "NaN", "00000000c0000000", "dec(20000000000) | exact NaN"),
    ("numeric(5,-2)", "NaN", "00000000c0000000", "{scale: -131072, value: 0x02} | exact NaN"),
    ("numeric", "12345678901234567890123456789012345678901234567890.123", "000e000c00000003000c0d801ed204d2162e23340d801ed204d2162e23340d801ed204ce", "{scale: 3, value: 0x20ff419c54c3d9acd6211637005bcd07b515a64244cb}"),
    ("numeric", "-0.5", "0001ffff400000011388", "{scale: 1, value: 0xfb}"),
    ("numeric", "10000.0000", "00010001000000040001", "{scale: 4, value: 0x05f5e100}"),
    ("numeric", "0.00000", "0000000000000005", "{scale: 5, value: 0x00}"),
    ("numeric", "-0.00000000000000000001", "0001fffb400000140001", "{scale: 20, value: 0xff}"),
    ("numeric(10,3)", "1234.500", "000200000000000304d21388", "dec(1234500)"),
    ("numeric(10,3)", "-0.001", "0001ffff40000003000a", "dec(-1)"),
    ("numeric(5,0)", "99999", "00020001000000000009270f", "dec(99999)"),
    ("money", "$12.34", "00000000000004d2", "dec(1234)"),
    ("money", "-$1,234.56", "fffffffffffe1dc0", "dec(-123456)"),
    ("money", "$0.00", "0000000000000000", "dec(0)"),
    ("money", "$92,233,720,368,547,758.07", "7fffffffffffffff", "dec(9223372036854775807)"),
    ("money", "-$92,233,720,368,547,758.08", "8000000000000000", "dec(-9223372036854775808)"),
    ("text", r#"héllo ☃ "quoted""#, "68c3a96c6c6f20e29883202271756f74656422", r#""héllo ☃ \"quoted\"""#),
    ("text", "", "", r#""""#),
    ("varchar(10)", "abc", "616263", r#""abc""#),
    ("name", "a name", "61206e616d65", r#""a name""#),
    (r#""char""#, "c", "63", r#""c""#),
    (r#""char""#, r#"\200"#, "80", r#""\\200""#),
    (r#""char""#, r#"\377"#, "ff", r#""\\377""#),
    (r#""char""#, "", "00", r#""""#),
    (r#""char""#, r#"\"#, "5c", r#""\\""#),
    ("bytea", r#"\x00ff10"#, "00ff10", "0x00ff10"),
    ("bytea", r#"\x"#, "", "0x"),
    ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc999c0b4ef8bb6d6bb9bd380a11", r#""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#),
    ("date", "4713-01-01 BC", "ffda97cd", "-2440550"),
    ("date", "-infinity", "80000000", "-2147483648"),
    ("date", "infinity", "7fffffff", "2147483647"),
    ("date", "2024-02-29", "00002279", "19782"),
    ("date", "5874897-12-31", "7fda970c", "2145042905"),
    ("date", "10000-01-01", "002c95d4", "2932897"),
    ("time", "00:00:00", "0000000000000000", "0"),
    ("time", "24:00:00", "000000141dd76000", "86400000000"),
    ("time", "12:34:56.789012", "0000000a8be62614", "45296789012"),
    ("time", "23:59:59.999999", "000000141dd75fff", "86399999999"),
    ("time", "01:02:03.5", "00000000ddf019e0", "3723500000"),
    ("timetz", "12:34:56.789012+05:30", "0000000a8be62614ffffb2a8", r#""12:34:56.789012+05:30""#),
    ("timetz", "00:00:00+00", "000000000000000000000000", r#""00:00:00Z""#),
    ("timetz", "24:00:00-15:59", "000000141dd760000000e0c4", r#""24:00:00-15:59""#),
    ("timetz", "10:15:30.1-03:30:15", "0000000899349b2000003147", r#""10:15:30.1-03:30:15""#),
    ("timetz", "23:59:59.999999+15:59:59", "000000141dd75fffffff1f01", r#""23:59:59.999999+15:59:59""#),
    ("timetz", "01:02:03-01", "00000000dde878c000000e10", r#""01:02:03-01:00""#),
    ("timestamp", "294276-12-31 23:59:59.999999", "7fffff5bb3b29fff", "-9222426057709551615 | exact 294276-12-31 23:59:59.999999"),
    ("timestamp", "294247-01-10 04:00:54.775806", "7ffca2fec4c81ffe", "9223372036854775806"),
    ("timestamp", "294247-01-10 04:00:54.775807", "7ffca2fec4c81fff", "-9223372036854775807 | exact 294247-01-10 04:00:54.775807"),
    ("timestamptz", "294276-12-31 23:59:59.999999+00", "7fffff5bb3b29fff", r#""+294276-12-31T23:59:59.999999Z""#),
    ("timestamptz", "4714-11-24 00:00:00+00 BC", "fd0f7cc1411fa000", r#""-4713-11-24T00:00:00Z""#),
    ("date", "4714-11-24 BC", "ffda97a7", "-2440588"),
    ("timestamp", "4713-01-01 00:00:00 BC", "fd0f7fbdaf17e000", "-210863520000000000"),
    ("timestamp", "infinity", "7fffffffffffffff", "9223372036854775807"),
    ("timestamp", "2024-02-29 12:00:00.5", "0002b582c47fb120", "1709208000500000"),
    ("timestamptz", "infinity", "7fffffffffffffff", r#""infinity""#),
    ("timestamptz", "-infinity", "8000000000000000", r#""-infinity""#),
    ("timestamptz", "2024-02-29 12:00:00.000001+00", "0002b582c4781001", r#""2024-02-29T12:00:00.000001Z""#),
    ("timestamptz", "1900-01-01 00:00:00+00", "fff4c9ee7c0b8000", r#""1900-01-01T00:00:00Z""#),
    ("interval", "1 year 2 mons 3 days 04:05:06.78", "000000036c97a760000000030000000e", r#""P1Y2M3DT4H5M6.78S""#),
    ("interval", "-1 days +02:03:00", "00000001b7e1dd00ffffffff00000000", r#""P0Y0M-1DT2H3M0S""#),
    ("interval", "00:00:00", "00000000000000000000000000000000", r#""P0Y0M0DT0H0M0S""#),
    ("interval", "-00:00:01.5", "ffffffffffe91ca00000000000000000", r#""P0Y0M0DT0H0M-1.5S""#),
    ("interval", "178000000 years", "0000000000000000000000007f50c600", r#""P178000000Y0M0DT0H0M0S""#),
    ("interval", "-178000000 years", "00000000000000000000000080af3a00", r#""P-178000000Y0M0DT0H0M0S""#),
    ("interval", "1 year 2 mons -3 days +04:05:06.000007", "000000036c8bc087fffffffd0000000e", r#""P1Y2M-3DT4H5M6.000007S""#),
    ("interval", "-1 years -2 mons", "000000000000000000000000fffffff2", r#""P-1Y-2M0DT0H0M0S""#),
    ("interval", "1 mon", "00000000000000000000000000000001", r#""P0Y1M0DT0H0M0S""#),
    ("interval", "-1 mons", "000000000000000000000000ffffffff", r#""P0Y-1M0DT0H0M0S""#),
    ("interval", "2562047788:00:54.775807", "7fffffffffffffff0000000000000000", r#""P0Y0M0DT2562047788H0M54.775807S""#),
    ("interval", "-2562047788:00:54.775808", "80000000000000000000000000000000", r#""P0Y0M0DT-2562047788H0M-54.775808S""#),
    ("interval", "1 day -00:00:00.000001", "ffffffffffffffff0000000100000000", r#""P0Y0M1DT0H0M-0.000001S""#),
    ("interval", "11 mons", "0000000000000000000000000000000b", r#""P0Y11M0DT0H0M0S""#),
    ("interval", "-3 days", "0000000000000000fffffffd00000000", r#""P0Y0M-3DT0H0M0S""#),
    ("interval", "00:00:00.000001", "00000000000000010000000000000000", r#""P0Y0M0DT0H0M0.000001S""#),
    ("interval", "-1 years -2 mons +3 days -04:05:06", "fffffffc93743f8000000003fffffff2", r#""P-1Y-2M3DT-4H-5M-6S""#),
    ("interval", "1 day 01:00:00", "00000000d693a4000000000100000000", r#""P0Y0M1DT1H0M0S""#),
    ("interval", "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807", "7fffffffffffffff7fffffff7fffffff", r#""P178956970Y7M2147483647DT2562047788H0M54.775807S""#),
    ("interval", "178956970 years 7 mons", "0000000000000000000000007fffffff", r#""P178956970Y7M0DT0H0M0S""#),
    ("interval", "-178956970 years -8 mons", "00000000000000000000000080000000", r#""P-178956970Y-8M0DT0H0M0S""#),
    ("interval", "2147483647 days", "00000000000000007fffffff00000000", r#""P0Y0M2147483647DT0H0M0S""#),
    ("interval", "-2147483648 days", "00000000000000008000000000000000", r#""P0Y0M-2147483648DT0H0M0S""#),
    ("float4", "1e-45", "00000001", "1e-45"),
    ("float4", "-3.4028235e+38", "ff7fffff", "-3.4028235e38"),
    ("float4", "1.1754944e-38", "00800000", "1.1754944e-38"),
    ("timetz", "00:00:00-15:59:59", "00000000000000000000e0ff", r#""00:00:00-15:59:59""#),
    ("timestamp", "4714-11-24 00:00:00 BC", "fd0f7cc1411fa000", "-210866803200000000"),
    ("timestamp", "-infinity", "8000000000000000", "-9223372036854775808"),
    ("cid", "4294967295", "ffffffff", "4294967295"),
    ("timestamp(3)", "2024-02-29 12:34:56.789", "0002b58341728608", "1709210096789"),
    ("timestamp(3)", "294276-12-31 23:59:59.999", "7fffff5bb3b29c18", "9224318015999999"),
    ("timestamp(3)", "4714-11-24 00:00:00 BC", "fd0f7cc1411fa000", "-210866803200000"),
    ("timestamp(3)", "infinity", "7fffffffffffffff", "9223372036854775807"),
    ("timestamp(0)", "1969-12-31 23:59:59", "fffca2fec4b8ddc0", "-1000"),
    ("time(3)", "24:00:00", "000000141dd76000", "86400000"),
    ("time(3)", "12:34:56.789", "0000000a8be62608", "45296789"),
    ("time(0)", "23:59:59", "000000141dc81dc0", "86399000"),
    ("xid", "0", "00000000", "0"),
    ("macaddr8", "ff:ff:ff:ff:ff:ff:ff:ff", "ffffffffffffffff", r#""ff:ff:ff:ff:ff:ff:ff:ff""#),
    ("interval", "-00:00:00.5", "fffffffffff85ee00000000000000000", r#""P0Y0M0DT0H0M-0.5S""#),
    ("json", r#"{"a": [1, 2.50]}"#, "7b2261223a205b312c20322e35305d7d", r#""{\"a\": [1, 2.50]}""#),
    ("jsonb", r#"{"a": [1, 2.50], "b": null}"#, "017b2261223a205b312c20322e35305d2c202262223a206e756c6c7d", r#""{\"a\": [1, 2.50], \"b\": null}""#),
    ("xml", "<a>1</a>", "3c613e313c2f613e", r#""<a>1</a>""#),
    ("jsonpath", r#"$."a"[*]?(@ > 1)"#, "01242e2261225b2a5d3f2840203e203129", r#""$.\"a\"[*]?(@ > 1)""#),
    ("inet", "192.168.0.1/24", "02180004c0a80001", r#""192.168.0.1/24""#),
    ("inet", "192.168.0.1", "02200004c0a80001", r#""192.168.0.1""#),
    ("inet", "::1", "0380001000000000000000000000000000000001", r#""::1""#),
    ("inet", "::", "0380001000000000000000000000000000000000", r#""::""#),
    ("inet", "0.0.0.0/0", "0200000400000000", r#""0.0.0.0/0""#),
    ("inet", "::ffff:1.2.3.4", "0380001000000000000000000000ffff01020304", r#""::ffff:1.2.3.4""#),
    ("inet", "::1.2.3.4", "0380001000000000000000000000000001020304", r#""::1.2.3.4""#),
    ("inet", "2001:db8::1/64", "0340001020010db8000000000000000000000001", r#""2001:db8::1/64""#),
    ("inet", "2001:db8::1:0:0:1", "0380001020010db8000000000001000000000001", r#""2001:db8::1:0:0:1""#),
    ("inet", "fe80::1:0:0:0", "03800010fe800000000000000001000000000000", r#""fe80::1:0:0:0""#),
    ("inet", "1::", "0380001000010000000000000000000000000000", r#""1::""#),
    ("inet", "::2", "0380001000000000000000000000000000000002", r#""::2""#),
    ("inet", "::0.1.0.0", "0380001000000000000000000000000000010000", r#""::0.1.0.0""#),
    ("inet", "::ffff:0.0.0.0", "0380001000000000000000000000ffff00000000", r#""::ffff:0.0.0.0""#),
    ("inet", "1:2:3:4:5:6:7:8", "0380001000010002000300040005000600070008", r#""1:2:3:4:5:6:7:8""#),
    ("inet", "::/0", "0300001000000000000000000000000000000000", r#""::/0""#),
    ("inet", "::1:0:0", "0380001000000000000000000000000100000000", r#""::1:0:0""#),
    ("inet", "1:0:0:1::1", "0380001000010000000000010000000000000001", r#""1:0:0:1::1""#),
    ("inet", "1:0:1:0:1:0:1:0", "0380001000010000000100000001000000010000", r#""1:0:1:0:1:0:1:0""#),
    ("inet", "::ffff:0.0.0.1", "0380001000000000000000000000ffff00000001", r#""::ffff:0.0.0.1""#),
    ("inet", "255.255.255.255", "02200004ffffffff", r#""255.255.255.255""#),
    ("inet", "10.0.0.1/8", "020800040a000001", r#""10.0.0.1/8""#),
    ("inet", "::ffff:1.2.3.4/120", "0378001000000000000000000000ffff01020304", r#""::ffff:1.2.3.4/120""#),
    ("cidr", "10.0.0.0/8", "020801040a000000", r#""10.0.0.0/8""#),
    ("cidr", "1.2.3.4/32", "0220010401020304", r#""1.2.3.4/32""#),
    ("cidr", "::/0", "0300011000000000000000000000000000000000", r#""::/0""#),
    ("cidr", "2001:db8::/32", "0320011020010db8000000000000000000000000", r#""2001:db8::/32""#),
    ("cidr", "::ffff:1.2.3.0/120", "0378011000000000000000000000ffff01020300", r#""::ffff:1.2.3.0/120""#),
    ("cidr", "10.1.0.0/16", "021001040a010000", r#""10.1.0.0/16""#),
    ("cidr", "0.0.0.0/0", "0200010400000000", r#""0.0.0.0/0""#),
    ("cidr", "2001:db8::1/128", "0380011020010db8000000000000000000000001", r#""2001:db8::1/128""#),
    ("macaddr", "08:00:2b:01:02:03", "08002b010203", r#""08:00:2b:01:02:03""#),
    ("macaddr", "ff:ff:ff:ff:ff:ff", "ffffffffffff", r#""ff:ff:ff:ff:ff:ff""#),
    ("macaddr8", "08:00:2b:01:02:03:04:05", "08002b0102030405", r#""08:00:2b:01:02:03:04:05""#),
    ("varbit", "10101", "00000005a8", "0x15"),
    ("varbit", "00101", "0000000528", "0x05 | beside 00101"),
    ("varbit(1)", "1", "0000000180", "true"),
    ("varbit(1)", "", "00000000", "false | beside "),
    ("bit(8)", "00000000", "0000000800", "0x"),
    ("varbit", "", "00000000", "0x | beside "),
    ("varbit", "111111111", "00000009ff80", "0xff01"),
    ("oid", "4294967295", "ffffffff", "4294967295"),
    ("oid", "0", "00000000", "0"),
    ("pg_lsn", "16/B374D848", "00000016b374d848", r#""16/B374D848""#),
    ("pg_lsn", "0/0", "0000000000000000", r#""0/0""#),
    ("pg_lsn", "FFFFFFFF/FFFFFFFF", "ffffffffffffffff", r#""FFFFFFFF/FFFFFFFF""#),
    ("xid", "4294967295", "ffffffff", "4294967295"),
    ("cid", "7", "00000007", "7"),
    ("xid8", "18446744073709551615", "ffffffffffffffff", "-1 | exact 18446744073709551615"),
    ("xid8", "9223372036854775808", "8000000000000000", "-9223372036854775808 | exact 9223372036854775808"),
    ("xid8", "9223372036854775807", "7fffffffffffffff", "9223372036854775807"),
    ("xid8", "123", "000000000000007b", "123"),
    ("tid", "(0,1)", "000000000001", r#""(0,1)""#),
    ("tid", "(4294967295,65535)", "ffffffffffff", r#""(4294967295,65535)""#),
    ("refcursor", "cur", "637572", r#""cur""#),
    ("citext", "Hello", "48656c6c6f", r#""Hello""#),
    ("mood", "ok", "6f6b", r#""ok""#),
    ("posint", "5", "00000005", "5"),
    ("price", "12.50", "0002000000000002000c1388", "dec(1250)"),
    ("hstore", r#""a"=>"1", "b"=>NULL"#, "00000002000000016100000001310000000162ffffffff", r#""{\"a\":\"1\",\"b\":null}""#),
    ("hstore", "", "00000000", r#""{}""#),
    ("hstore", r#""k\"q"=>"v\\w", "x y"=>"""#, "00000002000000036b227100000003765c770000000378207900000000", r#""{\"k\\\"q\":\"v\\\\w\",\"x y\":\"\"}""#),
    ("tsvector", "'a':1 'b':2", "00000002610000010001620000010002", r#""'a':1 'b':2""#),
    ("tsquery", "'a' & !'b'", "000000040202020101000062000100006100", r#""'a' & !'b'""#),
    ("point", "(1.5,2)", "3ff80000000000004000000000000000", "{x: 1.5, y: 2.0, wkb: 0x0101000000000000000000f83f0000000000000040, srid: null}"),
    ("line", "{1,2,3}", "3ff000000000000040000000000000004008000000000000", r#""{1,2,3}""#),
    ("lseg", "[(0,0),(1,1)]", "000000000000000000000000000000003ff00000000000003ff0000000000000", r#""[(0,0),(1,1)]""#),
    ("box", "(1,1),(0,0)", "3ff00000000000003ff000000000000000000000000000000000000000000000", r#""(1,1),(0,0)""#),
    ("path", "[(0,0),(1,1),(2,0)]", "0000000003000000000000000000000000000000003ff00000000000003ff000000000000040000000000000000000000000000000", r#""[(0,0),(1,1),(2,0)]""#),
    ("polygon", "((0,0),(1,1),(2,0))", "00000003000000000000000000000000000000003ff00000000000003ff000000000000040000000000000000000000000000000", r#""((0,0),(1,1),(2,0))""#),
    ("circle", "<(0,0),1>", "000000000000000000000000000000003ff0000000000000", r#""<(0,0),1>""#),
    ("int4range", "[1,10)", "020000000400000001000000040000000a", r#""[1,10)""#),
    ("tstzrange", r#"["2024-01-01 00:00:00+00",infinity)"#, "02000000080002b0d5d4e94000000000087fffffffffffffff", r#""[\"2024-01-01 00:00:00+00\",infinity)""#),
    ("int4multirange", "{[1,3),[5,7)}", "00000002000000110200000004000000010000000400000003000000110200000004000000050000000400000007", r#""{[1,3),[5,7)}""#),
    ("pair", r#"(1,"x y")"#, "000000020000001700000004000000010000001900000003782079", r#""(1,\"x y\")""#),
    ("regclass", "pg_class", "000004eb", r#""pg_class""#),
    ("int4[]", "{1,NULL,3}", "00000001000000010000001700000003000000010000000400000001ffffffff0000000400000003", "[1, null, 3]"),
    ("int4[]", "{}", "000000000000000000000017", "[]"),
    ("int4[]", "[0:1]={1,2}", "000000010000000000000017000000020000000000000004000000010000000400000002", "[1, 2] | dims [0:1]"),
    ("int4[]", "[0:1][1:2]={{1,2},{3,4}}", "000000020000000000000017000000020000000000000002000000010000000400000001000000040000000200000004000000030000000400000004", "[1, 2, 3, 4] | dims [0:1][1:2]"),
    ("text[]", "{{a,b},{c,NULL}}", "00000002000000010000001900000002000000010000000200000001000000016100000001620000000163ffffffff", r#"["a", "b", "c", null] | dims [1:2][1:2]"#),
    ("text[]", r#"{"a b","","NULL","q\"x","back\\s",NULL,"{x}","a,b"}"#, "00000001000000010000001900000008000000010000000361206200000000000000044e554c4c00000003712278000000066261636b5c73ffffffff000000037b787d00000003612c62", r#"["a b", "", "NULL", "q\"x", "back\\s", null, "{x}", "a,b"]"#),
    ("numeric[]", "{1.5,NaN}", "0000000100000000000006a400000002000000010000000c0002000000000001000113880000000800000000c0000000", "[{scale: 1, value: 0x0f}, null] | [1] NaN"),
    ("numeric[]", "{1.5,NaN,-Infinity}", "0000000100000000000006a400000003000000010000000c0002000000000001000113880000000800000000c00000000000000800000000f0000020", "[{scale: 1, value: 0x0f}, null, null] | [1] NaN | [2] -Infinity"),
    ("numeric(5,1)[]", "{1.5,NaN}", "0000000100000000000006a400000002000000010000000c0002000000000001000113880000000800000000c0000000", "[dec(15), null] | [1] NaN"),
    ("numeric[]", "{1.5,-2}", "0000000100000000000006a400000002000000010000000c0002000000000001000113880000000a00010000400000000002", "[{scale: 1, value: 0x0f}, {scale: 0, value: 0xfe}]"),
    ("timestamptz[]", r#"{infinity,"2024-01-01 00:00:00+00"}"#, "0000000100000000000004a00000000200000001000000087fffffffffffffff000000080002b0d5d4e94000", r#"["infinity", "2024-01-01T00:00:00Z"]"#),
    ("box[]", "{(1,1),(0,0);(2,2),(1,1)}", "00000001000000000000025b0000000200000001000000203ff00000000000003ff00000000000000000000000000000000000000000000000000020400000000000000040000000000000003ff00000000000003ff0000000000000", r#"["(1,1),(0,0)", "(2,2),(1,1)"]"#),
    ("point[]", r#"{"(1,2)"}"#, "0000000100000000000002580000000100000001000000103ff00000000000004000000000000000", "[{x: 1.0, y: 2.0, wkb: 0x0101000000000000000000f03f0000000000000040, srid: null}]"),
    ("bool[]", "{t,f,NULL}", "000000010000000100000010000000030000000100000001010000000100ffffffff", "[true, false, null]"),
    ("bytea[]", r#"{"\\x00ff",NULL}"#, "00000001000000010000001100000002000000010000000200ffffffffff", "[0x00ff, null]"),
    ("uuid[]", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "000000010000000000000b86000000010000000100000010a0eebc999c0b4ef8bb6d6bb9bd380a11", r#"["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]"#),
    ("date[]", "{infinity,2024-01-01}", "00000001000000000000043a0000000200000001000000047fffffff000000040000223e", "[2147483647, 19723]"),
    ("interval[]", r#"{"1 day",-00:00:01}"#, "0000000100000000000004a20000000200000001000000100000000000000000000000010000000000000010fffffffffff0bdc00000000000000000", r#"["P0Y0M1DT0H0M0S", "P0Y0M0DT0H0M-1S"]"#),
    ("inet[]", "{::1,10.0.0.1/8}", "000000010000000000000365000000020000000100000014038000100000000000000000000000000000000100000008020800040a000001", r#"["::1", "10.0.0.1/8"]"#),
    (r#""char"[]"#, r#"{a,",","\\"}"#, "00000001000000000000001200000003000000010000000161000000012c000000015c", r#"["a", ",", "\\"]"#),
    ("varchar[]", r#"{"héllo ☃"}"#, "00000001000000000000041300000001000000010000000a68c3a96c6c6f20e29883", r#"["héllo ☃"]"#),
    ("jsonb[]", r#"{"{\"a\": 1}"}"#, "000000010000000000000eda000000010000000100000009017b2261223a20317d", r#"["{\"a\": 1}"]"#),
    ("money[]", r#"{$1.00,"$1,234.56"}"#, "000000010000000000000316000000020000000100000008000000000000006400000008000000000001e240", "[dec(100), dec(123456)]"),
    ("hstore[]", r#"{"\"a\"=>\"1\"",NULL}"#, "0000000100000001000055c300000002000000010000000e0000000100000001610000000131ffffffff", r#"["{\"a\":\"1\"}", null]"#),
    ("mood[]", "{sad,happy}", "0000000100000000000056ac000000020000000100000003736164000000056861707079", r#"["sad", "happy"]"#),
    ("posint[]", "{1,2}", "0000000100000000000056b4000000020000000100000004000000010000000400000002", "[1, 2]"),
    ("citext[]", "{Ab,NULL}", "0000000100000001000056430000000200000001000000024162ffffffff", r#"["Ab", null]"#),
    ("time[]", "{24:00:00}", "00000001000000000000043b000000010000000100000008000000141dd76000", "[86400000000]"),
    ("timetz[]", "{12:00:00+01}", "0000000100000000000004f200000001000000010000000c0000000a0eebb000fffff1f0", r#"["12:00:00+01:00"]"#),
    ("bit(2)[]", "{01,10}", "0000000100000000000006180000000200000001000000050000000240000000050000000280", "[0x01, 0x02]"),
    ("float8[]", "{NaN,-Infinity,1.5}", "0000000100000000000002bd0000000300000001000000087ff800000000000000000008fff0000000000000000000083ff8000000000000", "[NaN, -inf, 1.5]"),
    ("int8[]", "{{{1}},{{2}}}", "000000030000000000000014000000020000000100000001000000010000000100000001000000080000000000000001000000080000000000000002", "[1, 2] | dims [1:2][1:1][1:1]"),
    ("macaddr[]", "{08:00:2b:01:02:03}", "00000001000000000000033d00000001000000010000000608002b010203", r#"["08:00:2b:01:02:03"]"#),
    ("oid[]", "{1}", "00000001000000000000001a00000001000000010000000400000001", "[1]"),
    ("pg_lsn[]", "{0/1}", "000000010000000000000c940000000100000001000000080000000000000001", r#"["0/1"]"#),
    ("name[]", "{a}", "00000001000000000000001300000001000000010000000161", r#"["a"]"#),
    ("xid8[]", "{1}", "0000000100000000000013cd0000000100000001000000080000000000000001", "[1]"),
    ("tid[]", r#"{"(1,2)"}"#, "00000001000000000000001b000000010000000100000006000000010002", r#"["(1,2)"]"#),
    ("bpchar(5)", "ab   ", "6162202020", r#""ab   ""#),
    ("bit(4)", "1010", "00000004a0", "0x0a"),
    ("bit(1)", "0", "0000000100", "false"),
    ("bit(12)", "100000000001", "0000000c8010", "0x0108"),
    ("bpchar(3)[]", r#"{"ab ","   ",NULL}"#, "00000001000000010000041200000003000000010000000361622000000003202020ffffffff", r#"["ab ", "   ", null]"#),
    ("int4[]", "[2147483645:2147483646]={1,2}", "000000010000000000000017000000027ffffffd00000004000000010000000400000002", "[1, 2] | dims [2147483645:2147483646]"),
    ("int4[]", "[-2147483648:-2147483647][1:1]={{1},{2}}", "0000000200000000000000170000000280000000000000010000000100000004000000010000000400000002", "[1, 2] | dims [-2147483648:-2147483647][1:1]"),
    ("int4[]", "{{{{{{1,2}}}}}}", "00000006000000000000001700000001000000010000000100000001000000010000000100000001000000010000000100000001000000020000000100000004000000010000000400000002", "[1, 2] | dims [1:1][1:1][1:1][1:1][1:1][1:2]"),
    ("numeric[]", "[0:1][5:6]={{1.5,NaN},{Infinity,NULL}}", "0000000200000001000006a4000000020000000000000002000000050000000c0002000000000001000113880000000800000000c00000000000000800000000d0000020ffffffff", "[{scale: 1, value: 0x0f}, null, null, null] | dims [0:1][5:6] | [1] NaN | [2] Infinity"),
    ("text[]", r#"[0:0]={""}"#, "000000010000000000000019000000010000000000000000", r#"[""] | dims [0:0]"#),
    ("text[]", "[2:3]={a,b}", "000000010000000000000019000000020000000200000001610000000162", r#"["a", "b"] | dims [2:3]"#),
    ("int4[]", "[-3:-2]={1,2}", "00000001000000000000001700000002fffffffd00000004000000010000000400000002", "[1, 2] | dims [-3:-2]"),
    ("hstore", r#""é"=>"☃", "NULL"=>"NULL", "null"=>NULL"#, "0000000300000002c3a900000003e29883000000044e554c4c000000044e554c4c000000046e756c6cffffffff", r#""{\"é\":\"☃\",\"NULL\":\"NULL\",\"null\":null}""#),
    ("interval", "-1 days -00:00:01", "fffffffffff0bdc0ffffffff00000000", r#""P0Y0M-1DT0H0M-1S""#),
    ("interval", "-1 mons +1 day", "000000000000000000000001ffffffff", r#""P0Y-1M1DT0H0M0S""#),
    ("interval", "100:00:00.5", "00000053d1b3b1200000000000000000", r#""P0Y0M0DT100H0M0.5S""#),
    ("numeric", "123456789012345678901234567890.5", "0009000700000001000c0d801ed204d2162e23340d801ed21388", "{scale: 1, value: 0x0f951a9fa3a286c94f0e766c39}"),
    ("numeric", "-99999999999999999999999999999999999999", "000a0009400000000063270f270f270f270f270f270f270f270f270f", "{scale: 0, value: 0xb4c4b357a5793b85f675ddc000000001}"),
    ("numeric", "0.1000000000000000000000000", "0001ffff0000001903e8", "{scale: 25, value: 0x00d3c21bcecceda1000000}"),
    ("text[]", "{\"tab\there\",\"new\nline\",x=y,\" a\",\"Null\",nul}", "0000000100000000000000190000000600000001000000087461620968657265000000086e65770a6c696e6500000003783d79000000022061000000044e756c6c000000036e756c", r#"["tab\there", "new\nline", "x=y", " a", "Null", "nul"]"#),
    ("int2vector", "1 -2 32767 -32768", "000000010000000000000015000000040000000000000002000100000002fffe000000027fff000000028000", "[1, -2, 32767, -32768]"),
    ("int2vector", "", "0000000100000000000000150000000000000000", "[]"),
    ("int2vector[]", r#"{"1 2",3,NULL}"#, "00000001000000010000001600000003000000010000002000000001000000000000001500000002000000000000000200010000000200020000001a0000000100000000000000150000000100000000000000020003ffffffff", "[[1, 2], [3], null]"),
];

/// A fake OID for types that are not built in: their TypeInfo says what they are.
const EXTENSION_OID: u32 = 16_385;

/// The column description of a type named as in [`PAIRS`].
pub(crate) fn column(ty: &str) -> (u32, i32, TypeInfo) {
    if let Some(element) = ty.strip_suffix("[]") {
        let (oid, modifier, info) = column(element);
        if info == TypeInfo::default() {
            let (array, _) = BUILT_IN_ARRAYS
                .iter()
                .find(|(_, e)| *e == oid)
                .expect("a built-in array type");
            return (*array, modifier, info);
        }
        let array = TypeInfo {
            name: format!("_{}", info.name),
            typtype: 'b',
            element: Some(Box::new(ElementType {
                type_oid: oid,
                declared_oid: 0,
                info,
            })),
            ..TypeInfo::default()
        };
        return (EXTENSION_OID + 100, modifier, array);
    }
    let numeric = |precision: i32, scale: i32| ((precision << 16) | scale) + 4;
    let named = |name: &str, typtype| TypeInfo {
        name: name.into(),
        typtype,
        ..TypeInfo::default()
    };
    let domain = |base: &str, name: &str| TypeInfo {
        domain: Some(name.into()),
        ..named(base, 'b')
    };
    let built_in = |oid| (oid, -1, TypeInfo::default());
    // Composite fields and range subtypes: built-in ones checked against the OIDs their
    // binary forms repeat, user-defined ones (whose OIDs the server chose) not.
    let field = |oid| ElementType {
        type_oid: oid,
        declared_oid: oid,
        info: TypeInfo::default(),
    };
    let user = |ty: &str| {
        let (type_oid, _, info) = column(ty);
        ElementType {
            type_oid,
            declared_oid: 0,
            info,
        }
    };
    let composite = |name: &str, fields: Vec<ElementType>| {
        (
            EXTENSION_OID + 4,
            -1,
            TypeInfo {
                fields,
                ..named(name, 'c')
            },
        )
    };
    let range = |name: &str, subtype: ElementType| {
        (
            EXTENSION_OID + 5,
            -1,
            TypeInfo {
                subtype: Some(Box::new(subtype)),
                ..named(name, 'r')
            },
        )
    };
    match ty {
        "bool" => built_in(16),
        "bytea" => built_in(17),
        "\"char\"" => built_in(18),
        "name" => built_in(19),
        "int8" => built_in(20),
        "int2" => built_in(21),
        "int4" => built_in(23),
        "regclass" => built_in(2205),
        "text" => built_in(25),
        "oid" => built_in(26),
        "tid" => built_in(27),
        "xid" => built_in(28),
        "cid" => built_in(29),
        "json" => built_in(114),
        "xml" => built_in(142),
        "point" => built_in(600),
        "lseg" => built_in(601),
        "path" => built_in(602),
        "box" => built_in(603),
        "polygon" => built_in(604),
        "line" => built_in(628),
        "cidr" => built_in(650),
        "float4" => built_in(700),
        "float8" => built_in(701),
        "circle" => built_in(718),
        "macaddr8" => built_in(774),
        "money" => built_in(790),
        "macaddr" => built_in(829),
        "inet" => built_in(869),
        "bpchar(3)" => (1042, 7, TypeInfo::default()),
        "bpchar(5)" => (1042, 9, TypeInfo::default()),
        "varchar" => built_in(1043),
        "varchar(10)" => (1043, 14, TypeInfo::default()),
        "date" => built_in(1082),
        "time" => built_in(1083),
        "timestamp" => built_in(1114),
        "timestamp(0)" => (1114, 0, TypeInfo::default()),
        "timestamp(3)" => (1114, 3, TypeInfo::default()),
        "time(0)" => (1083, 0, TypeInfo::default()),
        "time(3)" => (1083, 3, TypeInfo::default()),
        "timestamptz" => built_in(1184),
        "interval" => built_in(1186),
        "timetz" => built_in(1266),
        "bit(1)" => (1560, 1, TypeInfo::default()),
        "bit(2)" => (1560, 2, TypeInfo::default()),
        "bit(4)" => (1560, 4, TypeInfo::default()),
        "bit(12)" => (1560, 12, TypeInfo::default()),
        "bit(8)" => (1560, 8, TypeInfo::default()),
        "varbit(1)" => (1562, 1, TypeInfo::default()),
        "varbit" => built_in(1562),
        "numeric" => built_in(1700),
        "numeric(10,3)" => (1700, numeric(10, 3), TypeInfo::default()),
        "numeric(5,0)" => (1700, numeric(5, 0), TypeInfo::default()),
        "numeric(5,1)" => (1700, numeric(5, 1), TypeInfo::default()),
        // The scale is an 11-bit field.
        "numeric(5,-2)" => (1700, numeric(5, -2 & 0x7ff), TypeInfo::default()),
        "refcursor" => built_in(1790),
        "uuid" => built_in(2950),
        "pg_lsn" => built_in(3220),
        "tsvector" => built_in(3614),
        "tsquery" => built_in(3615),
        "jsonb" => built_in(3802),
        "int4range" => built_in(3904),
        "tstzrange" => built_in(3910),
        "jsonpath" => built_in(4072),
        "int4multirange" => built_in(4451),
        "xid8" => built_in(5069),
        "citext" => (EXTENSION_OID, -1, named("citext", 'b')),
        "hstore" => (EXTENSION_OID + 1, -1, named("hstore", 'b')),
        "mood" => (
            EXTENSION_OID + 2,
            -1,
            TypeInfo {
                enum_labels: vec!["sad".into(), "ok".into(), "happy".into()],
                ..named("mood", 'e')
            },
        ),
        "pair" => composite("pair", vec![field(23), field(25)]),
        "withdropped" => composite("withdropped", vec![field(23), field(25)]),
        "inner_most" => composite(
            "inner_most",
            vec![user("textrange"), user("mood"), user("posint"), field(3615)],
        ),
        "outer_most" => composite(
            "outer_most",
            vec![user("inner_most"), user("inner_most[]"), user("pair")],
        ),
        "everything" => composite(
            "everything",
            [
                16, 21, 20, 700, 701, 1700, 790, 25, 18, 19, 1043, 1042, 17, 2950, 1082, 1083,
                1266, 1114, 1184, 1186, 114, 3802, 4072, 142, 1560, 1562, 869, 650, 829, 774, 26,
                5069, 3220, 27, 600, 603, 3614, 5038,
            ]
            .into_iter()
            .map(field)
            .chain(["hstore", "citext", "mood", "posint", "pair"].map(user))
            .chain([3904, 4451, 1007, 1009].map(field))
            .chain([user("pair[]")])
            .collect(),
        ),
        "floatrange" => range("floatrange", field(701)),
        "float4range" => range("float4range", field(700)),
        "textrange" => range("textrange", field(25)),
        "pairrange" => range("pairrange", user("pair")),
        "int8range" => built_in(3926),
        "numrange" => built_in(3906),
        "tsrange" => built_in(3908),
        "daterange" => built_in(3912),
        "nummultirange" => built_in(4532),
        "tstzmultirange" => built_in(4534),
        "datemultirange" => built_in(4535),
        "int2vector" => built_in(22),
        "oidvector" => built_in(30),
        "txid_snapshot" => built_in(2970),
        "pg_snapshot" => built_in(5038),
        "posint" => (23, -1, domain("int4", "posint")),
        "price" => (1700, numeric(10, 2), domain("numeric", "price")),
        _ => panic!("no column for {ty}"),
    }
}

/// The kind and the Avro schema of a column of type `ty`.
pub(crate) fn kind_and_schema(ty: &str, options: &TypeOptions) -> (ColumnKind, Schema) {
    let (oid, modifier, info) = column(ty);
    let kind = ColumnKind::of(oid, modifier, &info, options);
    let schema = Schema::parse(&kind.schema(&info, &mut Vec::new())).unwrap();
    (kind, schema)
}

pub(crate) fn encode(kind: ColumnKind, raw: Raw<'_>) -> Result<Vec<u8>, ValueError> {
    Ok(encode_exact(kind, None, raw)?.0)
}

/// The Avro of a value and what it left for the exact field (see `Exact::describe_value`).
pub(crate) fn encode_exact(
    kind: ColumnKind,
    printer: Option<&Output>,
    raw: Raw<'_>,
) -> Result<(Vec<u8>, String), ValueError> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    kind.encode_with(printer, raw, &mut out, &mut scratch)?;
    Ok((out, scratch.exact.describe_value()))
}

/// How a column of type `ty` prints its binary form as text, when sluice knows.
pub(crate) fn output(ty: &str, options: &TypeOptions) -> Option<Output> {
    let (oid, _, info) = column(ty);
    Output::of(oid, &info, options).ok()
}

/// A value of a column of type `ty` (a binary one printed as text first where the kind
/// carries text, as the table codec does).
pub(crate) fn encode_as(
    ty: &str,
    raw: Raw<'_>,
    options: &TypeOptions,
) -> Result<Vec<u8>, ValueError> {
    let (kind, _) = kind_and_schema(ty, options);
    let mut out = Vec::new();
    kind.encode_with(
        output(ty, options).as_ref(),
        raw,
        &mut out,
        &mut Scratch::default(),
    )?;
    Ok(out)
}

/// The value of `datum`, which must be exactly one value of `schema`.
pub(crate) fn decode(schema: &Schema, datum: &[u8]) -> Avro {
    let mut rest = datum;
    let value = GenericDatumReader::builder(schema)
        .build()
        .unwrap()
        .read_value(&mut rest)
        .unwrap();
    assert!(rest.is_empty(), "{} bytes left over", rest.len());
    value
}

/// A decoded value in a compact form: unions show their branch's value, bytes as hex,
/// decimals as their unscaled integer, maps sorted by key.
pub(crate) fn show(value: &Avro) -> String {
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    match value {
        Avro::Null => "null".into(),
        Avro::Boolean(b) => b.to_string(),
        Avro::Int(n) | Avro::Date(n) => n.to_string(),
        Avro::Long(n) => n.to_string(),
        Avro::Float(f) => format!("{f:?}"),
        Avro::Double(f) => format!("{f:?}"),
        Avro::Bytes(bytes) => format!("0x{}", hex(bytes)),
        Avro::String(s) => format!("{s:?}"),
        Avro::Union(_, value) => show(value),
        Avro::Array(items) => format!("[{}]", list(&mut items.iter().map(show))),
        Avro::Map(map) => {
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let pairs = pairs.iter().map(|(k, v)| format!("{k:?}: {}", show(v)));
            format!("{{{}}}", list(&mut pairs.into_iter()))
        }
        Avro::Record(fields) => {
            let fields = fields.iter().map(|(k, v)| format!("{k}: {}", show(v)));
            format!("{{{}}}", list(&mut fields.into_iter()))
        }
        Avro::Decimal(decimal) => {
            let bytes = <Vec<u8>>::try_from(decimal).unwrap();
            let mut value: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                -1
            } else {
                0
            };
            for byte in bytes {
                value = value << 8 | i128::from(byte);
            }
            format!("dec({value})")
        }
        other => format!("{other:?}"),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// What a pair gives, checked; a description of the mismatch otherwise.
fn check(
    ty: &str,
    text: &str,
    binary: &str,
    expected: &str,
    options: &TypeOptions,
) -> Result<(), String> {
    let (kind, schema) = kind_and_schema(ty, options);
    let printer = output(ty, options);
    let from_text = encode_exact(kind, printer.as_ref(), Raw::Text(text.as_bytes()));
    let from_binary = encode_exact(kind, printer.as_ref(), Raw::Binary(&unhex(binary)));
    let (from_text, exact) = match (from_text, from_binary) {
        (Ok(t), Err(ValueError::BinaryUnsupported { .. })) if printer.is_none() => t,
        (Ok(t), Ok(b)) => {
            if t != b {
                return Err(format!("text {t:?} != binary {b:?}"));
            }
            t
        }
        (t, b) => return Err(format!("text gave {t:?}, binary gave {b:?}")),
    };
    let shown = show(&decode(&schema, &from_text)) + &exact;
    if shown == expected {
        Ok(())
    } else {
        Err(format!("decoded {shown}, expected {expected}"))
    }
}

#[test]
fn text_and_binary_forms_give_the_same_avro_for_every_type() {
    let failures: Vec<String> = PAIRS
        .iter()
        .filter_map(|&(ty, text, binary, expected)| {
            check(ty, text, binary, expected, &TypeOptions::default())
                .err()
                .map(|why| format!("{ty} {text:?}: {why}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn numerics_in_string_mode_are_postgres_own_text() {
    let options = TypeOptions {
        numeric: NumericMode::String,
        ..TypeOptions::default()
    };
    // One-dimensional arrays from 1: their text splits into the elements.
    let numerics = PAIRS.iter().filter(|(ty, text, ..)| {
        (ty.starts_with("numeric") || *ty == "price") && !text.starts_with('[')
    });
    let mut checked = 0;
    let mut failures = Vec::new();
    for &(ty, text, binary, _) in numerics {
        let expected = match ty {
            _ if ty.ends_with("[]") => format!(
                "[{}]",
                text.trim_matches(['{', '}'])
                    .split(',')
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!("{text:?}"),
        };
        if let Err(why) = check(ty, text, binary, &expected, &options) {
            failures.push(format!("{ty} {text:?}: {why}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 20, "{checked}");
}

#[test]
fn adaptive_precision_gives_milliseconds_up_to_precision_3_and_microseconds_otherwise() {
    let name = |ty: &str, options: &TypeOptions| {
        let (oid, modifier, info) = column(ty);
        let kind = ColumnKind::of(oid, modifier, &info, options);
        kind.schema(&info, &mut Vec::new())["connect.name"].clone()
    };
    let adaptive = TypeOptions::default();
    let micro = TypeOptions {
        time_precision: crate::types::TimePrecision::Microseconds,
        ..TypeOptions::default()
    };
    for (ty, adaptively, always_micro) in [
        (
            "timestamp(0)",
            "io.debezium.time.Timestamp",
            "io.debezium.time.MicroTimestamp",
        ),
        (
            "timestamp(3)",
            "io.debezium.time.Timestamp",
            "io.debezium.time.MicroTimestamp",
        ),
        (
            "timestamp",
            "io.debezium.time.MicroTimestamp",
            "io.debezium.time.MicroTimestamp",
        ),
        (
            "time(3)",
            "io.debezium.time.Time",
            "io.debezium.time.MicroTime",
        ),
        (
            "time",
            "io.debezium.time.MicroTime",
            "io.debezium.time.MicroTime",
        ),
    ] {
        assert_eq!(name(ty, &adaptive), adaptively, "{ty}");
        assert_eq!(name(ty, &micro), always_micro, "{ty}");
    }
    let micros = "1709210096789000";
    check(
        "timestamp(3)",
        "2024-02-29 12:34:56.789",
        "0002b58341728608",
        micros,
        &micro,
    )
    .unwrap();
}

#[test]
fn hstores_in_map_mode_are_avro_maps() {
    let options = TypeOptions {
        hstore: crate::types::HstoreMode::Map,
        ..TypeOptions::default()
    };
    for (ty, text, binary, expected) in [
        (
            "hstore",
            r#""a"=>"1", "b"=>NULL"#,
            "00000002000000016100000001310000000162ffffffff",
            r#"{"a": "1", "b": null}"#,
        ),
        ("hstore", "", "00000000", "{}"),
        (
            "hstore",
            r#""k\"q"=>"v\\w", "x y"=>"""#,
            "00000002000000036b227100000003765c770000000378207900000000",
            r#"{"k\"q": "v\\w", "x y": ""}"#,
        ),
        (
            "hstore[]",
            r#"{"\"a\"=>\"1\"",NULL}"#,
            "0000000100000001000055c300000002000000010000000e0000000100000001610000000131ffffffff",
            r#"[{"a": "1"}, null]"#,
        ),
    ] {
        check(ty, text, binary, expected, &options).unwrap();
    }
}

#[test]
fn from_postgres_17_the_all_extreme_intervals_are_its_infinities() {
    let options = TypeOptions {
        interval_infinities: true,
        ..TypeOptions::default()
    };
    for (text, binary) in [
        ("infinity", "7fffffffffffffff7fffffff7fffffff"),
        ("-infinity", "80000000000000008000000080000000"),
    ] {
        check("interval", text, binary, &format!("{text:?}"), &options).unwrap();
    }
}

#[test]
fn every_type_in_the_pairs_decodes_from_binary_but_the_catalog_named_ones() {
    let options = TypeOptions::default();
    let undecoded: Vec<&str> = PAIRS
        .iter()
        .map(|(ty, ..)| *ty)
        .filter(|ty| {
            !kind_and_schema(ty, &options).0.reads_binary() && output(ty, &options).is_none()
        })
        .collect();
    // regclass prints a name from the catalog: the stream carries it as text.
    assert_eq!(undecoded, ["regclass"]);
}

#[test]
fn text_postgres_never_prints_is_refused() {
    let cases = [
        ("bytea", r"\xabc"),
        ("bytea", r"\x0g"),
        ("bytea", r"\x+a"),
        ("int2vector", "1  2"),
        ("int2vector", " 1"),
        ("int2vector", "1 +2"),
        ("int2vector", "32768"),
        ("int2vector", "1,2"),
        ("oid", "-1"),
        ("oid", "4294967296"),
        ("\"char\"", r"\100"),
        ("\"char\"", "ab"),
        ("time", "24:00:00.000001"),
        ("timestamp", "4714-11-23 23:59:59.999999 BC"),
        ("timestamp", "294277-01-01 00:00:00"),
        ("timestamp(3)", "294277-01-01 00:00:00"),
        ("time", "-01:00:00"),
        ("timetz", "12:00:00+16:00"),
        ("timetz", "12:00:00"),
        ("interval", ""),
        ("interval", "1 fortnight"),
        ("interval", "1 day 1 day 00:00:00 00:00:00"),
        ("interval", "-2147483649 days"),
        ("interval", "00:60:00"),
        ("inet", "1.2.3"),
        ("inet", "1.2.3.4/33"),
        ("inet", "1:2:3:4:5:6:7:8:9"),
        ("inet", "1::2::3"),
        ("inet", "::12345"),
        ("cidr", "::/129"),
        ("macaddr", "08:00:2b:01:02"),
        ("macaddr8", "08:00:2b:01:02:03"),
        ("bit(4)", "1012"),
        ("pg_lsn", "16"),
        ("pg_lsn", "123456789/0"),
        ("tid", "(1,65536)"),
        ("money", "$"),
        ("numeric", "1e5"),
        ("hstore", r#""a"=>"1","b"=>"2""#),
        ("hstore", r#""a"=>1"#),
        ("int4[]", "{1,}"),
        ("int4[]", "{1,2"),
        ("int4[]", "{1}}"),
        ("int4[]", "1,2"),
        ("int4[]", "{,1}"),
        ("text[]", r#"{"a}"#),
        ("text[]", "{a b\"}"),
        ("int4[]", "[0:1]{1,2}"),
        ("int4[]", "[0:2]={1,2}"),
        ("int4[]", "[0:1]={{1,2},{3,4}}"),
        ("int4[]", "[1:0]={}"),
        ("int4[]", "[x:1]={1}"),
        ("int4[]", "{{1,2},{3}}"),
        ("int4[]", "{{1},2}"),
        ("int4[]", "{{{{{{{1}}}}}}}"),
    ];
    for (ty, text) in cases {
        let (kind, _) = kind_and_schema(ty, &TypeOptions::default());
        let result = encode(kind, Raw::Text(text.as_bytes()));
        assert!(
            matches!(result, Err(ValueError::Malformed { .. })),
            "{ty} {text:?}: {result:?}"
        );
    }
}

#[test]
fn a_refused_value_is_never_in_its_error() {
    // Refused by every kind that parses its input, in both forms (text-only kinds and
    // strings take it as it is).
    const CANARY: &str = "{canary-7Q9x,(\"1\")}";
    let mut refused = 0;
    for (ty, ..) in PAIRS {
        let (kind, _) = kind_and_schema(ty, &TypeOptions::default());
        for raw in [Raw::Text(CANARY.as_bytes()), Raw::Binary(CANARY.as_bytes())] {
            if let Err(err) = encode(kind, raw) {
                refused += 1;
                let shown = format!("{err} {err:?}");
                assert!(!shown.contains("canary"), "{ty}: {shown}");
            }
        }
    }
    assert!(refused > 50, "only {refused} refusals");
}
