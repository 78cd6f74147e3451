//! What sluice knows of a column's PostgreSQL type: what the catalog says of it ([`TypeInfo`]),
//! the options of the run that shape its Avro form ([`TypeOptions`]), and the built-in OIDs and
//! array types. Which kind a type gets is `kind`'s ([`crate::ColumnKind::of`]).

/// What the catalog says about a column's type beyond its OID and modifier. Built-in types
/// need none of it (`TypeInfo::default()`); the others are recognised by it:
///
/// - an extension type by `name` (`hstore`, `citext`), as its OID is not fixed;
/// - an enum by `typtype == 'e'`, with its labels;
/// - a domain by `domain`: the caller passes the *base* type's OID and modifier as the
///   column's (`pg_type.typbasetype`, `typtypmod`), and the base type's `name` and `typtype`
///   here; the column is mapped as its base type, and the schema's field names the domain;
/// - an array of a type that is not built-in by `element`: the element type described the
///   same way (an array's type modifier is its element's, so the column's modifier is used);
/// - composite, range and multirange types (`typtype` 'c', 'r', 'm') and anything else not
///   known: their text form, as a string. Their binary form is printed as that text, which
///   needs the types inside them: a range's `subtype`, a composite's `fields` (see
///   [`crate::ColumnKind::reads_binary`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeInfo {
    /// `pg_type.typname` of the type (of the base type, for a domain), e.g. `hstore`.
    pub name: String,
    /// `pg_type.typtype`: 'b' base, 'e' enum, 'c' composite, 'r' range, 'm' multirange,
    /// 'p' pseudo, 'd' domain (an unresolved domain: mapped as text). `'\0'` (the default)
    /// reads as 'b'.
    pub typtype: char,
    /// The domain's name, when the column's declared type is a domain (shown as the caller
    /// gives it; `format_type` output is a good choice).
    pub domain: Option<String>,
    /// For an array type that is not built in: its element type.
    pub element: Option<Box<ElementType>>,
    /// For an enum: its labels in sort order (`pg_enum.enumsortorder`).
    pub enum_labels: Vec<String>,
    /// For a range type ('r') or a multirange type ('m'): the range's subtype.
    pub subtype: Option<Box<ElementType>>,
    /// For a composite type ('c'): its attributes' types in order, dropped ones left out.
    pub fields: Vec<ElementType>,
    /// `pg_type.typsend` is 0: the type has no binary form (pgoutput sends such a column as
    /// text even in binary mode).
    pub no_send: bool,
}

/// What separates the elements of an array of type `element_oid` in its text form: `;` for
/// `box` (and domains over it), `,` for every other built-in type.
pub(crate) fn delimiter_of(element_oid: u32) -> u8 {
    if element_oid == oid::BOX { b';' } else { b',' }
}

/// The element type of an array column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElementType {
    /// The element's type OID (the base type's, when the element is a domain).
    pub type_oid: u32,
    /// The element's type OID as declared (a domain's own), which the binary forms of arrays
    /// and composites repeat; 0 when not known (then not checked).
    pub declared_oid: u32,
    pub info: TypeInfo,
}

/// How `numeric` columns are carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NumericMode {
    /// Avro decimals: `numeric(p, s)` as Kafka Connect's `Decimal`, unconstrained `numeric`
    /// as Debezium's `VariableScaleDecimal`. NaN and ±Infinity are null (a stand-in in a
    /// key), the value in the event's `exact` field.
    #[default]
    Decimal,
    /// Avro strings holding PostgreSQL's own text form (`1.50`, `NaN`, `-Infinity`): exact,
    /// every value included.
    String,
}

/// How `time` and `timestamp` values are carried (Debezium's `time.precision.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimePrecision {
    /// As the column's precision: `time(0)` to `time(3)` and `timestamp(0)` to `timestamp(3)`
    /// in milliseconds (`io.debezium.time.Time`, `io.debezium.time.Timestamp`), the others
    /// in microseconds (`MicroTime`, `MicroTimestamp`): Debezium's default.
    #[default]
    Adaptive,
    /// Always microseconds.
    Microseconds,
}

impl TimePrecision {
    /// Whether a `time` or `timestamp` column of this type modifier (its precision, -1 when
    /// unconstrained) is carried in milliseconds.
    pub(crate) fn millis(self, type_modifier: i32) -> bool {
        self == TimePrecision::Adaptive && (0..=3).contains(&type_modifier)
    }
}

/// How `hstore` values are carried (Debezium's `hstore.handling.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HstoreMode {
    /// A JSON object of nullable strings, `io.debezium.data.Json`: Debezium's default.
    #[default]
    Json,
    /// An Avro map of nullable strings.
    Map,
}

/// Run-wide choices of how types are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeOptions {
    pub numeric: NumericMode,
    pub time_precision: TimePrecision,
    pub hstore: HstoreMode,
    /// The database's money fraction digits (`lc_monetary`'s; 2 in most locales): the scale
    /// of money's Avro decimal.
    pub money_scale: u32,
    /// Whether the server has interval infinities (PostgreSQL 17 on): there the binary form
    /// whose fields are all at their extremes is `infinity` (`-infinity`), before it is a
    /// finite interval. Default false.
    pub interval_infinities: bool,
    /// Whether the database prints money as the C locale does (`$1,234.56`, `-$1,234.56`;
    /// see [`crate::money_text`]): money inside a composite or range is printed so from its
    /// binary form. When not, such columns' binary form is not decoded (their table is
    /// streamed in text mode).
    pub money_in_c_format: bool,
}

impl Default for TypeOptions {
    fn default() -> Self {
        TypeOptions {
            numeric: NumericMode::Decimal,
            time_precision: TimePrecision::Adaptive,
            hstore: HstoreMode::Json,
            money_scale: 2,
            interval_infinities: false,
            money_in_c_format: true,
        }
    }
}

/// Type OIDs of the built-in types with a mapping of their own.
pub(crate) mod oid {
    pub(crate) const BOOL: u32 = 16;
    pub(crate) const BYTEA: u32 = 17;
    pub(crate) const CHAR: u32 = 18;
    pub(crate) const NAME: u32 = 19;
    pub(crate) const INT8: u32 = 20;
    pub(crate) const INT2: u32 = 21;
    pub(crate) const INT2VECTOR: u32 = 22;
    pub(crate) const INT4: u32 = 23;
    pub(crate) const TEXT: u32 = 25;
    pub(crate) const OID: u32 = 26;
    pub(crate) const OIDVECTOR: u32 = 30;
    pub(crate) const TID: u32 = 27;
    pub(crate) const XID: u32 = 28;
    pub(crate) const CID: u32 = 29;
    pub(crate) const JSON: u32 = 114;
    pub(crate) const XML: u32 = 142;
    pub(crate) const POINT: u32 = 600;
    pub(crate) const LSEG: u32 = 601;
    pub(crate) const PATH: u32 = 602;
    pub(crate) const BOX: u32 = 603;
    pub(crate) const POLYGON: u32 = 604;
    pub(crate) const LINE: u32 = 628;
    pub(crate) const CIDR: u32 = 650;
    pub(crate) const FLOAT4: u32 = 700;
    pub(crate) const FLOAT8: u32 = 701;
    pub(crate) const CIRCLE: u32 = 718;
    pub(crate) const MACADDR8: u32 = 774;
    pub(crate) const MONEY: u32 = 790;
    pub(crate) const MACADDR: u32 = 829;
    pub(crate) const INET: u32 = 869;
    pub(crate) const ACLITEM: u32 = 1033;
    pub(crate) const BPCHAR: u32 = 1042;
    pub(crate) const VARCHAR: u32 = 1043;
    pub(crate) const DATE: u32 = 1082;
    pub(crate) const TIME: u32 = 1083;
    pub(crate) const TIMESTAMP: u32 = 1114;
    pub(crate) const TIMESTAMPTZ: u32 = 1184;
    pub(crate) const INTERVAL: u32 = 1186;
    pub(crate) const TIMETZ: u32 = 1266;
    pub(crate) const BIT: u32 = 1560;
    pub(crate) const VARBIT: u32 = 1562;
    pub(crate) const NUMERIC: u32 = 1700;
    pub(crate) const REFCURSOR: u32 = 1790;
    pub(crate) const UUID: u32 = 2950;
    pub(crate) const TXID_SNAPSHOT: u32 = 2970;
    pub(crate) const PG_LSN: u32 = 3220;
    pub(crate) const TSVECTOR: u32 = 3614;
    pub(crate) const TSQUERY: u32 = 3615;
    pub(crate) const GTSVECTOR: u32 = 3642;
    pub(crate) const JSONB: u32 = 3802;
    pub(crate) const JSONPATH: u32 = 4072;
    pub(crate) const PG_SNAPSHOT: u32 = 5038;
    pub(crate) const XID8: u32 = 5069;
}

/// The built-in array types: (array OID, element OID), as `pg_type.typarray` of PostgreSQL 15
/// lists them (the catalogs' own row types included).
pub(crate) const BUILT_IN_ARRAYS: &[(u32, u32)] = &[
    (1000, 16),
    (1001, 17),
    (1002, 18),
    (1003, 19),
    (1016, 20),
    (1005, 21),
    (1006, 22),
    (1007, 23),
    (1008, 24),
    (1009, 25),
    (1028, 26),
    (1010, 27),
    (1011, 28),
    (1012, 29),
    (1013, 30),
    (210, 71),
    (270, 75),
    (272, 81),
    (273, 83),
    (199, 114),
    (143, 142),
    (1017, 600),
    (1018, 601),
    (1019, 602),
    (1020, 603),
    (1027, 604),
    (629, 628),
    (651, 650),
    (1021, 700),
    (1022, 701),
    (719, 718),
    (775, 774),
    (791, 790),
    (1040, 829),
    (1041, 869),
    (1034, 1033),
    (1014, 1042),
    (1015, 1043),
    (1182, 1082),
    (1183, 1083),
    (1115, 1114),
    (1185, 1184),
    (1187, 1186),
    (1270, 1266),
    (1561, 1560),
    (1563, 1562),
    (1231, 1700),
    (2201, 1790),
    (2207, 2202),
    (2208, 2203),
    (2209, 2204),
    (2210, 2205),
    (2211, 2206),
    (2287, 2249),
    (1263, 2275),
    (2951, 2950),
    (2949, 2970),
    (3221, 3220),
    (3643, 3614),
    (3645, 3615),
    (3644, 3642),
    (3735, 3734),
    (3770, 3769),
    (3807, 3802),
    (3905, 3904),
    (3907, 3906),
    (3909, 3908),
    (3911, 3910),
    (3913, 3912),
    (3927, 3926),
    (4073, 4072),
    (4090, 4089),
    (4097, 4096),
    (4192, 4191),
    (6150, 4451),
    (6151, 4532),
    (6152, 4533),
    (6153, 4534),
    (6155, 4535),
    (6157, 4536),
    (5039, 5038),
    (271, 5069),
];

/// The element type of a built-in array type.
pub(crate) fn built_in_element(array_oid: u32) -> Option<u32> {
    BUILT_IN_ARRAYS
        .iter()
        .find(|(array, _)| *array == array_oid)
        .map(|(_, element)| *element)
}
