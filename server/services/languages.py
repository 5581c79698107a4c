"""Language codes: what a status's ``language`` and a profile's default language may be.

The languages are Mastodon's (``LanguagesHelper::SUPPORTED_LOCALES``): the ISO 639-1 codes,
its ISO 639-3 extras (``ast``, ``ckb``, ``kab``, ``tok``…) and its regional entries
(``zh-CN``, ``zh-HK``, ``zh-TW``, ``zh-YUE``, ``ms-Arab``), with their English and native
names. A tag is matched case-insensitively and written as the list writes it (``zh-tw`` →
``zh-TW``); a tag the list does not hold falls back as Mastodon's ``valid_locale_cascade``
does, to its base language (``pt-BR`` → ``pt``, ``en_US`` → ``en``), and a language the list
does not know at all (``fil``, ``xx``) to none — the caller then uses its default. Only input
that is not shaped like a language tag (``12``, ``<script>``, ``english``) is refused.
"""

from __future__ import annotations

import re

from server.services.errors import ValidationFailed

# code -> (English name, native name), Mastodon's list and order (by code).
LANGUAGES: dict[str, tuple[str, str]] = {
    "aa": ("Afar", "Afaraf"),
    "ab": ("Abkhaz", "аҧсуа бызшәа"),
    "ae": ("Avestan", "avesta"),
    "af": ("Afrikaans", "Afrikaans"),
    "ak": ("Akan", "Akan"),
    "am": ("Amharic", "አማርኛ"),
    "an": ("Aragonese", "aragonés"),
    "ar": ("Arabic", "اللغة العربية"),
    "as": ("Assamese", "অসমীয়া"),
    "ast": ("Asturian", "Asturianu"),
    "av": ("Avaric", "авар мацӀ"),
    "ay": ("Aymara", "aymar aru"),
    "az": ("Azerbaijani", "azərbaycan dili"),
    "ba": ("Bashkir", "башҡорт теле"),
    "be": ("Belarusian", "беларуская мова"),
    "bg": ("Bulgarian", "български език"),
    "bh": ("Bihari", "भोजपुरी"),
    "bi": ("Bislama", "Bislama"),
    "bm": ("Bambara", "bamanankan"),
    "bn": ("Bengali", "বাংলা"),
    "bo": ("Tibetan", "བོད་ཡིག"),
    "br": ("Breton", "brezhoneg"),
    "bs": ("Bosnian", "bosanski jezik"),
    "ca": ("Catalan", "Català"),
    "ce": ("Chechen", "нохчийн мотт"),
    "ch": ("Chamorro", "Chamoru"),
    "chr": ("Cherokee", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ"),
    "ckb": ("Sorani (Kurdish)", "سۆرانی"),
    "co": ("Corsican", "corsu"),
    "cnr": ("Montenegrin", "crnogorski"),
    "cr": ("Cree", "ᓀᐦᐃᔭᐍᐏᐣ"),
    "cs": ("Czech", "čeština"),
    "csb": ("Kashubian", "Kaszëbsczi"),
    "cu": ("Old Church Slavonic", "ѩзыкъ словѣньскъ"),
    "cv": ("Chuvash", "чӑваш чӗлхи"),
    "cy": ("Welsh", "Cymraeg"),
    "da": ("Danish", "dansk"),
    "de": ("German", "Deutsch"),
    "dv": ("Divehi", "Dhivehi"),
    "dz": ("Dzongkha", "རྫོང་ཁ"),
    "ee": ("Ewe", "Eʋegbe"),
    "el": ("Greek", "Ελληνικά"),
    "en": ("English", "English"),
    "eo": ("Esperanto", "Esperanto"),
    "es": ("Spanish", "Español"),
    "et": ("Estonian", "eesti"),
    "eu": ("Basque", "euskara"),
    "fa": ("Persian", "فارسی"),
    "ff": ("Fula", "Fulfulde"),
    "fi": ("Finnish", "suomi"),
    "fj": ("Fijian", "Vakaviti"),
    "fo": ("Faroese", "føroyskt"),
    "fr": ("French", "Français"),
    "fy": ("Western Frisian", "Frysk"),
    "ga": ("Irish", "Gaeilge"),
    "gd": ("Scottish Gaelic", "Gàidhlig"),
    "gl": ("Galician", "galego"),
    "gn": ("Guarani", "Avañe'ẽ"),  # not in Mastodon's list; Easel has always taken it
    "gu": ("Gujarati", "ગુજરાતી"),
    "gv": ("Manx", "Gaelg"),
    "ha": ("Hausa", "هَوُسَ"),
    "he": ("Hebrew", "עברית"),
    "hi": ("Hindi", "हिन्दी"),
    "ho": ("Hiri Motu", "Hiri Motu"),
    "hr": ("Croatian", "Hrvatski"),
    "ht": ("Haitian", "Kreyòl ayisyen"),
    "hu": ("Hungarian", "magyar"),
    "hy": ("Armenian", "Հայերեն"),
    "hz": ("Herero", "Otjiherero"),
    "ia": ("Interlingua", "Interlingua"),
    "id": ("Indonesian", "Bahasa Indonesia"),
    "ie": ("Interlingue", "Interlingue"),
    "ig": ("Igbo", "Asụsụ Igbo"),
    "ii": ("Nuosu", "ꆈꌠ꒿ Nuosuhxop"),
    "ik": ("Inupiaq", "Iñupiaq"),
    "io": ("Ido", "Ido"),
    "is": ("Icelandic", "Íslenska"),
    "it": ("Italian", "Italiano"),
    "iu": ("Inuktitut", "ᐃᓄᒃᑎᑐᑦ"),
    "ja": ("Japanese", "日本語"),
    "jbo": ("Lojban", "la .lojban."),
    "jv": ("Javanese", "basa Jawa"),
    "ka": ("Georgian", "ქართული"),
    "kab": ("Kabyle", "Taqbaylit"),
    "kg": ("Kongo", "Kikongo"),
    "ki": ("Kikuyu", "Gĩkũyũ"),
    "kj": ("Kwanyama", "Kuanyama"),
    "kk": ("Kazakh", "қазақ тілі"),
    "kl": ("Kalaallisut", "kalaallisut"),
    "km": ("Khmer", "ខេមរភាសា"),
    "kn": ("Kannada", "ಕನ್ನಡ"),
    "ko": ("Korean", "한국어"),
    "kr": ("Kanuri", "Kanuri"),
    "ks": ("Kashmiri", "कश्मीरी"),
    "ku": ("Kurmanji (Kurdish)", "Kurmancî"),
    "kv": ("Komi", "коми кыв"),
    "kw": ("Cornish", "Kernewek"),
    "ky": ("Kyrgyz", "Кыргызча"),
    "la": ("Latin", "latine"),
    "lb": ("Luxembourgish", "Lëtzebuergesch"),
    "ldn": ("Láadan", "Láadan"),
    "lfn": ("Lingua Franca Nova", "lingua franca nova"),
    "lg": ("Ganda", "Luganda"),
    "li": ("Limburgish", "Limburgs"),
    "ln": ("Lingala", "Lingála"),
    "lo": ("Lao", "ລາວ"),
    "lt": ("Lithuanian", "lietuvių kalba"),
    "lu": ("Luba-Katanga", "Tshiluba"),
    "lv": ("Latvian", "latviešu valoda"),
    "mg": ("Malagasy", "fiteny malagasy"),
    "mh": ("Marshallese", "Kajin M̧ajeļ"),
    "mi": ("Māori", "te reo Māori"),
    "mk": ("Macedonian", "македонски јазик"),
    "ml": ("Malayalam", "മലയാളം"),
    "mn": ("Mongolian", "Монгол хэл"),
    "moh": ("Mohawk", "Kanienʼkéha"),
    "mr": ("Marathi", "मराठी"),
    "ms": ("Malay", "Bahasa Melayu"),
    "ms-Arab": ("Jawi Malay", "بهاس ملايو"),
    "mt": ("Maltese", "Malti"),
    "my": ("Burmese", "ဗမာစာ"),
    "na": ("Nauru", "Ekakairũ Naoero"),
    "nb": ("Norwegian Bokmål", "Norsk bokmål"),
    "nd": ("Northern Ndebele", "isiNdebele"),
    "nds": ("Low German", "Plattdüütsch"),
    "ne": ("Nepali", "नेपाली"),
    "ng": ("Ndonga", "Owambo"),
    "nl": ("Dutch", "Nederlands"),
    "nn": ("Norwegian Nynorsk", "Norsk Nynorsk"),
    "no": ("Norwegian", "Norsk"),
    "nr": ("Southern Ndebele", "isiNdebele"),
    "nv": ("Navajo", "Diné bizaad"),
    "ny": ("Chichewa", "chiCheŵa"),
    "oc": ("Occitan", "occitan"),
    "oj": ("Ojibwe", "ᐊᓂᔑᓈᐯᒧᐎᓐ"),
    "om": ("Oromo", "Afaan Oromoo"),
    "or": ("Oriya", "ଓଡ଼ିଆ"),
    "os": ("Ossetian", "ирон æвзаг"),
    "pa": ("Punjabi", "ਪੰਜਾਬੀ"),
    "pdc": ("Pennsylvania Dutch", "Pennsilfaani-Deitsch"),
    "pi": ("Pāli", "पाऴि"),
    "pl": ("Polish", "Polski"),
    "ps": ("Pashto", "پښتو"),
    "pt": ("Portuguese", "Português"),
    "qu": ("Quechua", "Runa Simi"),
    "rm": ("Romansh", "rumantsch grischun"),
    "rn": ("Kirundi", "Ikirundi"),
    "ro": ("Romanian", "Română"),
    "ru": ("Russian", "Русский"),
    "rw": ("Kinyarwanda", "Ikinyarwanda"),
    "sa": ("Sanskrit", "संस्कृतम्"),
    "sc": ("Sardinian", "sardu"),
    "sco": ("Scots", "Scots"),
    "sd": ("Sindhi", "सिन्धी"),
    "se": ("Northern Sami", "Davvisámegiella"),
    "sg": ("Sango", "yângâ tî sängö"),
    "si": ("Sinhala", "සිංහල"),
    "sk": ("Slovak", "slovenčina"),
    "sl": ("Slovenian", "slovenščina"),
    "sm": ("Samoan", "gagana fa'a Samoa"),  # not in Mastodon's list; Easel has always taken it
    "sma": ("Southern Sami", "Åarjelsaemien Gïele"),
    "smj": ("Lule Sami", "Julevsámegiella"),
    "sn": ("Shona", "chiShona"),
    "so": ("Somali", "Soomaaliga"),
    "sq": ("Albanian", "Shqip"),
    "sr": ("Serbian", "српски језик"),
    "ss": ("Swati", "SiSwati"),
    "st": ("Southern Sotho", "Sesotho"),
    "su": ("Sundanese", "Basa Sunda"),
    "sv": ("Swedish", "Svenska"),
    "sw": ("Swahili", "Kiswahili"),
    "szl": ("Silesian", "ślůnsko godka"),
    "ta": ("Tamil", "தமிழ்"),
    "te": ("Telugu", "తెలుగు"),
    "tg": ("Tajik", "тоҷикӣ"),
    "th": ("Thai", "ไทย"),
    "ti": ("Tigrinya", "ትግርኛ"),
    "tk": ("Turkmen", "Türkmen"),
    "tl": ("Tagalog", "Wikang Tagalog"),
    "tn": ("Tswana", "Setswana"),
    "to": ("Tonga", "faka Tonga"),
    "tok": ("Toki Pona", "toki pona"),
    "tr": ("Turkish", "Türkçe"),
    "ts": ("Tsonga", "Xitsonga"),
    "tt": ("Tatar", "татар теле"),
    "tw": ("Twi", "Twi"),
    "ty": ("Tahitian", "Reo Tahiti"),
    "ug": ("Uyghur", "ئۇيغۇرچە"),
    "uk": ("Ukrainian", "Українська"),
    "ur": ("Urdu", "اردو"),
    "uz": ("Uzbek", "Ўзбек"),
    "vai": ("Vai", "ꕙꔤ"),
    "ve": ("Venda", "Tshivenḓa"),
    "vi": ("Vietnamese", "Tiếng Việt"),
    "vo": ("Volapük", "Volapük"),
    "wa": ("Walloon", "walon"),
    "wo": ("Wolof", "Wollof"),
    "xal": ("Kalmyk", "Хальмг келн"),
    "xh": ("Xhosa", "isiXhosa"),
    "yi": ("Yiddish", "ייִדיש"),
    "yo": ("Yoruba", "Yorùbá"),
    "za": ("Zhuang", "Saɯ cueŋƅ"),
    "zba": ("Balaibalan", "باليبلن"),
    "zgh": ("Standard Moroccan Tamazight", "ⵜⴰⵎⴰⵣⵉⵖⵜ"),
    "zh": ("Chinese", "中文"),
    "zh-CN": ("Chinese (China)", "简体中文"),
    "zh-HK": ("Chinese (Hong Kong)", "繁體中文（香港）"),
    "zh-TW": ("Chinese (Taiwan)", "繁體中文（臺灣）"),
    "zh-YUE": ("Cantonese", "廣東話"),
    "zu": ("Zulu", "isiZulu"),
}

ISO_639_1 = frozenset(code for code in LANGUAGES if len(code) == 2)
ISO_639_3 = frozenset(code for code in LANGUAGES if len(code) == 3)
REGIONAL = frozenset(code for code in LANGUAGES if "-" in code)

# Codes clients send for a language the list holds under another code: Cantonese, and the
# withdrawn ISO 639-1 codes that Java and Android still report for a device's locale.
ALIASES = {"yue": "zh-YUE", "iw": "he", "in": "id", "ji": "yi", "jw": "jv"}

_BY_LOWER = {code.lower(): code for code in LANGUAGES} | ALIASES

# A BCP 47-shaped tag: a 2–3 letter language, then up to three subtags (script, region,
# variant…), "-" or "_" between them; at most 30 characters.
_TAG_RE = re.compile(r"\A[a-z]{2,3}(?:[-_][a-z0-9]{1,8}){0,3}\Z", re.IGNORECASE)

# What a status row can hold (``statuses.language`` is 16 characters).
MAX_LANGUAGE_LENGTH = 16


def is_language_tag(value: str) -> bool:
    """Whether ``value`` (stripped) is shaped like a language tag, known or not."""
    return _TAG_RE.match(value.strip()) is not None


def known_language(value: str | None) -> str | None:
    """The listed language ``value`` names, as the list writes it: the whole tag if listed
    (any case), else the tag with its last subtags dropped until one is (``zh-Hant-TW`` →
    ``zh``, ``yue-HK`` → ``zh-YUE``); None for none given, unknown or not a tag."""
    if value is None or not is_language_tag(value):
        return None
    parts = re.split(r"[-_]", value.strip().lower())
    for end in range(len(parts), 0, -1):
        found = _BY_LOWER.get("-".join(parts[:end]))
        if found is not None:
            return found
    return None


def normalize_language(language: str | None) -> str | None:
    """A local user's ``language`` (posting, editing): the listed language it names (see
    :func:`known_language`); None for none given and for a well-formed tag of a language the
    list does not know (the caller falls back to its default, as Mastodon does);
    ValidationFailed for input that is not a language tag at all."""
    if language is None or not language.strip():
        return None
    if not is_language_tag(language):
        raise ValidationFailed("Language is not a valid language code")
    return known_language(language)


def remote_language(language: str | None) -> str | None:
    """A remote post's language (a ``contentMap`` key); never refuses. A listed language as
    the list writes it; another well-formed tag kept as sent, in BCP 47 case (``fil``,
    ``gsw-CH``), as Mastodon keeps it; None for ``und`` (undetermined), for a tag too long
    to store and for anything else."""
    if language is None or not is_language_tag(language):
        return None
    found = known_language(language)
    if found is not None:
        return found
    parts = re.split(r"[-_]", language.strip().lower())
    if parts[0] == "und" or len(language.strip()) > MAX_LANGUAGE_LENGTH:
        return None
    return "-".join([parts[0]] + [part.title() if len(part) == 4 and part.isalpha()
                                  else part.upper() if len(part) == 2 and part.isalpha()
                                  else part for part in parts[1:]])


def instance_languages() -> list[dict[str, str]]:
    """Every language a status may have, as ``GET /api/v1/instance/languages`` lists them
    (Mastodon: ``[{"code": "aa", "name": "Afar"}, …]``)."""
    return [{"code": code, "name": name} for code, (name, _native) in LANGUAGES.items()]
