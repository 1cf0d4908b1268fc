"""The Market-1501 attribute vocabulary (Lin et al., "Improving person re-identification by
attribute and identity learning"), the one attribute language of ChatReID.

Every record's ``attributes`` dict uses these keys and values; SynthPeds writes them, the
Market-1501 reader converts the public ``market_attribute.mat`` codes into them, and the
instruction engine renders them to text. A missing key means "not annotated".
"""

from __future__ import annotations

# key -> allowed values. Booleans are accessories ("does the person carry a backpack?").
VOCAB: dict[str, tuple] = {
    "gender": ("male", "female"),
    "age": ("young", "teenager", "adult", "old"),
    "hair": ("short", "long"),
    "sleeve": ("long", "short"),
    "lower_length": ("long", "short"),
    "lower_type": ("dress", "pants"),
    "hat": (False, True),
    "backpack": (False, True),
    "bag": (False, True),
    "handbag": (False, True),
    "upper_color": ("black", "white", "red", "purple", "yellow", "gray", "blue", "green"),
    "lower_color": ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown"),
    # Beyond Market-1501: the traits that survive a change of clothes (SynthPeds annotates them;
    # a real benchmark without them leaves the keys out). Height and build are coarse classes of
    # the body, skin tone runs lightest first, hair colour is hair_style's companion.
    "height": ("short", "average", "tall"),
    "build": ("slim", "average", "heavy"),
    "skin": ("pale", "fair", "olive", "tan", "brown", "dark"),
    "hair_color": ("black", "dark brown", "brown", "blond", "red", "gray", "white"),
    "glasses": (False, True),
}

# The names of the 27 binary/ordinal fields of market_attribute.mat, in the file's order of
# meaning. Codes in the file are 1-based: for two-valued fields 1 is the first value of VOCAB
# (e.g. gender 1 = male, hat 1 = no) and 2 the second; age is 1..4; colours are 1 = no, 2 = yes.
MARKET_MAT_FIELDS = (
    "age", "backpack", "bag", "handbag", "downblack", "downblue", "downbrown", "downgray",
    "downgreen", "downpink", "downpurple", "downwhite", "downyellow", "upblack", "upblue",
    "upgreen", "upgray", "uppurple", "upred", "upwhite", "upyellow", "clothes", "down", "up",
    "hair", "hat", "gender",
)
_MAT_TO_KEY = {"clothes": "lower_type", "down": "lower_length", "up": "sleeve"}


def from_market_codes(codes: dict[str, int]) -> dict:
    """Convert one person's market_attribute.mat codes ({field: 1-based code}) to VOCAB form.

    Colour fields are multi-hot in the file; the first colour marked "yes" (in VOCAB order) is
    kept and a person with none marked gets no colour key.
    """
    out: dict = {}
    for field, code in codes.items():
        code = int(code)
        if field.startswith(("up", "down")) and field not in ("up", "down"):
            continue  # colours, below
        key = _MAT_TO_KEY.get(field, field)
        if key not in VOCAB:
            raise ValueError(f"unknown Market-1501 attribute field {field!r}")
        values = VOCAB[key]
        if not 1 <= code <= len(values):
            raise ValueError(f"attribute {field!r}: code {code} outside 1..{len(values)}")
        out[key] = values[code - 1]
    for key, prefix in (("upper_color", "up"), ("lower_color", "down")):
        for colour in VOCAB[key]:
            if int(codes.get(prefix + colour, 1)) == 2:
                out[key] = colour
                break
    return out


def validate(attributes: dict, where: str = "attributes") -> dict:
    """Raise ValueError naming ``where`` and the key if any key or value is outside VOCAB."""
    for key, value in attributes.items():
        if key not in VOCAB:
            raise ValueError(f"{where}: unknown attribute {key!r} (known: {', '.join(VOCAB)})")
        if value not in VOCAB[key]:
            raise ValueError(f"{where}: attribute {key!r} has value {value!r}; allowed {VOCAB[key]}")
    return attributes


def phrases(attributes: dict) -> dict[str, str]:
    """One short English phrase per annotated attribute, e.g. {"backpack": "carrying a backpack"}."""
    a = attributes
    out: dict[str, str] = {}
    if "gender" in a:
        out["gender"] = a["gender"]
    if "age" in a:
        out["age"] = {"young": "a child", "teenager": "a teenager", "adult": "an adult",
                      "old": "an elderly person"}[a["age"]]
    if "hair" in a:
        out["hair"] = f"{a['hair']} hair"
    if "hair_color" in a:
        out["hair_color"] = f"{a['hair_color']} hair"
    if "height" in a:
        out["height"] = {"short": "short stature", "average": "average height", "tall": "tall stature"}[a["height"]]
    if "build" in a:
        out["build"] = article(f"{a['build']} build")
    if "skin" in a:
        out["skin"] = f"{a['skin']} skin"
    if "sleeve" in a:
        out["sleeve"] = f"{a['sleeve']} sleeves"
    if "upper_color" in a:
        out["upper_color"] = f"a {a['upper_color']} upper garment"
    if "lower_type" in a or "lower_length" in a or "lower_color" in a:
        words = [a.get("lower_color"), a.get("lower_length")]
        noun = {"dress": "dress or skirt", "pants": "trousers"}.get(a.get("lower_type"), "lower garment")
        text = " ".join(w for w in words if w) + (" " if any(words) else "") + noun
        for k in ("lower_type", "lower_length", "lower_color"):
            if k in a:
                out[k] = text
    for acc in ("hat", "glasses", "backpack", "bag", "handbag"):
        if acc in a:
            noun = {"hat": "a hat", "glasses": "glasses", "backpack": "a backpack", "bag": "a bag",
                    "handbag": "a handbag"}[acc]
            verb = "wearing" if acc in ("hat", "glasses") else "carrying"
            out[acc] = f"{verb} {noun}" if a[acc] else f"not {verb} {noun}"
    return out


def article(phrase: str) -> str:
    """"a slim build", "an average build"."""
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def to_text(attributes: dict) -> str:
    """Render attributes as one sentence, e.g. "A male adult with short hair, ..."."""
    p = phrases(attributes)
    if not p:
        return ""
    head = " ".join(x for x in (p.get("gender"), p.get("age", "person")) if x)
    head = head.replace("an adult", "adult").replace("a child", "child").replace(
        "a teenager", "teenager").replace("an elderly person", "elderly person")
    article = "An" if head[:1].lower() in "aeiou" else "A"
    rest, seen = [], set()
    for key, phrase in p.items():
        if key in ("gender", "age") or phrase in seen:
            continue
        seen.add(phrase)
        rest.append(phrase)
    return f"{article} {head}" + (" with " + ", ".join(rest) if rest else "") + "."
