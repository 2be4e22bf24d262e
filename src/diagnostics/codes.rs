//! Stable diagnostic codes. Codes never change meaning once published; new ones are appended.
//!
//! | range | area |
//! | --- | --- |
//! | `E1xxx` | YAML and document schema |
//! | `E2xxx` | rule syntax |
//! | `E3xxx` | rule names and types |
//! | `E4xxx` | references between documents, bundle and data |
//! | `E5xxx` | rhai scripts |
//! | `E6xxx` | runtime refusals: a start, a command or a control request the runtime will not carry out |
//! | `E9xxx` | files and I/O |
//! | `Wxxxx` | warnings |

/// The file is not valid YAML.
pub const YAML_SYNTAX: &str = "E1001";
/// A mapping has a key the schema does not know.
pub const UNKNOWN_KEY: &str = "E1002";
/// A required key is missing.
pub const MISSING_KEY: &str = "E1003";
/// A value has the wrong YAML shape or type (e.g. a list where a number is expected).
pub const WRONG_TYPE: &str = "E1004";
/// A value has the right type but is not allowed (out of range, unknown choice).
pub const INVALID_VALUE: &str = "E1005";
/// The document's `kind` is missing or unknown.
pub const UNKNOWN_KIND: &str = "E1006";
/// The feature exists in the schema but is not supported yet.
pub const UNSUPPORTED: &str = "E1007";

/// The rule text does not parse.
pub const SYNTAX: &str = "E2001";
/// A number literal is malformed or out of range.
pub const BAD_NUMBER: &str = "E2002";

/// A name is neither a param, a bar field nor a function.
pub const UNKNOWN_NAME: &str = "E3001";
/// A function name is unknown.
pub const UNKNOWN_FUNCTION: &str = "E3002";
/// A function got too few or too many arguments.
pub const ARITY: &str = "E3003";
/// An operand or argument has the wrong type.
pub const TYPE_MISMATCH: &str = "E3004";
/// An argument must be a constant (literal or param) with a particular range.
pub const NOT_CONSTANT: &str = "E3005";
/// A dotted field such as `account.equty` is unknown.
pub const UNKNOWN_FIELD: &str = "E3006";
/// A field exists but is not available where it is used.
pub const FIELD_NOT_AVAILABLE: &str = "E3007";
/// A history index `x[k]` is invalid.
pub const BAD_INDEX: &str = "E3008";
/// An indicator with several outputs was used without picking one, or with an unknown one.
pub const OUTPUT_SELECTION: &str = "E3009";
/// A rule does not evaluate to a bool.
pub const RULE_NOT_BOOL: &str = "E3010";
/// A higher timeframe `x@1d` is invalid: an unknown timeframe, one not longer than (or not a
/// whole multiple of) the strategy's, a nested `@`, or something other than bar data.
pub const HIGHER_TIMEFRAME: &str = "E3011";

/// A referenced file or document does not exist.
pub const UNRESOLVED_REFERENCE: &str = "E4001";
/// Two things share a name or id that must be unique.
pub const DUPLICATE: &str = "E4002";
/// A param is invalid (shadows a built-in name, has the wrong type).
pub const BAD_PARAM: &str = "E4003";
/// A symbol has no market data.
pub const MISSING_DATA: &str = "E4004";
/// The phases' `next` links form a cycle.
pub const PHASE_CYCLE: &str = "E4005";
/// A rule-test case does not fit the document it tests (unknown rule id, a value no rule
/// computes, a field the rule cannot see).
pub const TEST_FIXTURE: &str = "E4006";
/// A symbol's bars are spaced differently from the timeframe of a strategy trading it.
pub const TIMEFRAME_MISMATCH: &str = "E4007";

/// A rhai script does not compile (syntax, undeclared variable, `import` or `eval`).
pub const SCRIPT_SYNTAX: &str = "E5001";
/// A rhai script lacks the entry function its use needs (e.g. `fn check(order, account, position)`).
pub const SCRIPT_ENTRY: &str = "E5002";
/// A rhai script failed its dry run on a synthetic context (error, limit, wrong return type).
pub const SCRIPT_DRY_RUN: &str = "E5003";

/// The runtime refuses a start or an action: the documents are valid, but what was asked
/// cannot be done with them now (a strategy given to `dsl run`, a phase that allows no broker,
/// a resumed run started another way, a metrics address on the network).
pub const RUNTIME_REFUSED: &str = "E6001";
/// A live-trading gate refused: an account number that does not match, a URL override with
/// every live gate holding, a refused override.
pub const LIVE_GATE: &str = "E6002";
/// A command-line argument's value is not usable (a period, a number, a time, a name).
pub const BAD_ARGUMENT: &str = "E6003";
/// Another process holds the journal, or the journal's records refuse what was asked (a
/// decided approval, a run that does not exist).
pub const JOURNAL_CONFLICT: &str = "E6004";
/// The broker or the data provider refused or could not be reached.
pub const BROKER: &str = "E6005";

/// A file could not be read or written.
pub const IO: &str = "E9001";
/// A data file has a bad row or cannot be interpreted.
pub const BAD_DATA: &str = "E9002";

/// A strategy param that no rule uses.
pub const UNUSED_PARAM: &str = "W0001";
/// A rule is constant after folding (always true or always false).
pub const CONSTANT_RULE: &str = "W0002";
/// A policy rule can never fire.
pub const NEVER_FIRES: &str = "W0003";
/// A strategy's exit can never be reached.
pub const UNREACHABLE_EXIT: &str = "W0004";
/// A value on one scale is compared with a number written on another (percent vs fraction).
pub const UNIT_MIXUP: &str = "W0005";
/// Market data that no strategy uses.
pub const UNUSED_DATA: &str = "W0006";
/// A traded symbol is in no allocation bucket: its entries will be denied.
pub const UNALLOCATED_SYMBOL: &str = "W0007";
/// A policy rule denies every entry a strategy can make (a constant stop above a stop cap, a
/// fixed size above a notional cap): the strategy would never trade.
pub const BLOCKS_EVERY_ENTRY: &str = "W0008";
