"""The header parser's fast path (lhp.codec._FlatParser: the standard
library's C scanner plus checks) against the strict general parser, on
tricky texts and on random token soup: the same value (types and member
order included), the same duplicate / out-of-range findings, or both refuse
the text."""

import random
import unittest

import support  # noqa: F401  (import path)
from lhp import codec

TRICKY = [
    '{}', ' {} ', '{"a":1}', '{"a":-0}', '{"a": -0}', '{"a":-0.0}', '{"a":0}', '{"a":-1}',
    '{"a":9007199254740991}', '{"a":9007199254740992}', '{"a":-9007199254740992}',
    '{"a":1' + '0' * 5000 + '}', '{"a":1e400}', '{"a":-1e400}', '{"a":1e-400}',
    '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":1.0}', '{"a":1E2}',
    '{"a":01}', '{"a":.5}', '{"a":1.}', '{"a":+1}', '{"a":1,"a":2}', '{"a":"x","a":"y"}',
    '{"a":"x","b":"x"}', '{"k":"","k":1}', '{"a":1,}', '{,}', '{"a"}', '{"a":}', '{"a" 1}',
    '\ufeff{"a":1}', '{"a":1} x', '{"a":1}\n', '\t{"a":true,"b":false,"c":null}\r\n',
    '{"a":tru}', '{"a":nul}', '{"a":"\x01"}', '{"a":"\x7f\u2028é"}', '{"a":"{"}',
    '{"a":"x:-0"}', '{"date":"2024-01-02"}', '{"a":1 2}', '{"a":"1"2}', '{"a":"x"}{"b":1}',
    '"{"', '1 {', '{"a":１}', '{"a":٣}', '{"a" :1 , "b" : "c" }', '{"":""}', '{"a":"b",}',
    '{"a":-}', '{"a":--1}', '{"a":1e}', '{"a":1e+}', '{"a":[1]}', '{"a":{}}',
]

TOKENS = ['{', '}', '{', '}', '"a"', '"b"', '"a"', ':', ':', ',', ',', ' ', '\n', '1', '-0',
          '0', '-1', '1.5', '1e400', '9007199254740992', 'true', 'false', 'null', 'NaN',
          '"x"', '"{"', '"-0"', 'x', '01', '.', '-', '\t', '"', '12345678901234567']


def outcome(parser):
    try:
        v = parser.parse()
    except codec._NotJson:
        return ("not json",)
    return ("ok", repr(v), [type(x).__name__ for x in (v.values() if isinstance(v, dict)
                                                       else [v])],
            parser.dup, parser.out_of_range)


class FastPathTests(unittest.TestCase):
    def check(self, text):
        fast = codec._parser_for(text, codec.DEFAULT_MAX_DEPTH)
        general = codec._Parser(text, codec.DEFAULT_MAX_DEPTH)
        self.assertEqual(outcome(fast), outcome(general), repr(text))
        return isinstance(fast, codec._FlatParser)

    def test_tricky_texts(self):
        took_fast = sum(self.check(t) for t in TRICKY)
        self.assertGreater(took_fast, 20)     # the fast path was really exercised

    def test_random_token_soup(self):
        rng = random.Random(19)
        took_fast = 0
        for _ in range(20000):
            body = "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 12)))
            text = body if rng.random() < 0.2 else "{" + body + "}"
            took_fast += self.check(text)
        self.assertGreater(took_fast, 1000)

    def test_random_valid_flat_objects(self):
        rng = random.Random(53)
        values = ['1', '0', '-7', '2.5', '1e3', 'true', 'false', 'null', '"v"', '""', '"é"',
                  '9007199254740991', '-9007199254740991']
        for _ in range(5000):
            names = [rng.choice('abcdefg') for _ in range(rng.randint(0, 6))]
            text = "{" + ",".join('%s"%s"%s:%s%s' % (rng.choice(['', ' ']), n,
                                                     rng.choice(['', '\t']), rng.choice(values),
                                                     rng.choice(['', '\n']))
                                  for n in names) + "}"
            self.check(text)


if __name__ == "__main__":
    unittest.main()
