### Needs review
### The classroom in Nuosu (Liangshan Yi). Only words that are certain are
### here; every other key shows in Chinese, which Liangshan's bilingual
### schools teach, until a Nuosu-speaking translator writes it. Never fill
### a key with a guess. How to work on this file: docs/translating.md.

# Nuosu hxop, "the Nuosu language".
language-name = ꆈꌠꉙ

## Numbers one to ten (cyp, nyip, suo, ly, nge, fut, shyp, hxit, ggu, ci;
## each glyph checked against its Unicode name, e.g. U+A22C YI SYLLABLE GGU),
## for messages that spell a number out. Terms (names starting with "-")
## are for use inside this file's messages; no page shows them alone.

-number-1 = ꋍ
-number-2 = ꑍ
-number-3 = ꌕ
-number-4 = ꇖ
-number-5 = ꉬ
-number-6 = ꃘ
-number-7 = ꏃ
-number-8 = ꉆ
-number-9 = ꈬ
-number-10 = ꊰ
