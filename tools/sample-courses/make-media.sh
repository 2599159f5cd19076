#!/usr/bin/env bash
# Regenerates the media files of the sample courses from nothing but
# ffmpeg's synthetic sources (lavfi) and headless chromium. Nothing is
# downloaded. See MEDIA.md for what each file is and how big it is.
#
#   tools/sample-courses/make-media.sh          # rewrite every media file
#
# Needs: ffmpeg with libx264, drawtext (libfreetype, fontconfig) and the
# native aac encoder; chromium; fonts-noto-core (Noto Sans Yi),
# fonts-noto-cjk and fonts-dejavu-core. Debian 12 packages all of them.
#
# The outputs are committed, so running this is only needed after changing it.
# ffmpeg's outputs are byte-for-byte repeatable with the same ffmpeg build and
# fonts (bitexact flags, no metadata, one encoder thread); chromium stamps the
# PDF with the current time, which is rewritten to a fixed date below.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
math="$here/grade3-math"
yi="$here/yi-literacy"

FFMPEG=${FFMPEG:-ffmpeg}
CHROMIUM=${CHROMIUM:-chromium}

yi_font=/usr/share/fonts/truetype/noto/NotoSansYi-Regular.ttf
latin_bold=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
latin=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
# The Simplified Chinese face of the Noto CJK collection, found by fontconfig.
cjk="font='Noto Sans CJK SC'"

for font in "$yi_font" "$latin_bold" "$latin"; do
    [[ -f $font ]] || { echo "missing font $font (apt-get install fonts-noto-core fonts-dejavu-core)" >&2; exit 1; }
done
# (Captured first: `cmd | grep -q` can fail under pipefail when grep exits early.)
[[ -n $(fc-list ':family=Noto Sans CJK SC') ]] \
    || { echo "missing Noto Sans CJK SC (apt-get install fonts-noto-cjk)" >&2; exit 1; }
filters=$("$FFMPEG" -hide_banner -filters 2>/dev/null)
[[ $filters == *" drawtext "* ]] \
    || { echo "this ffmpeg has no drawtext filter (it needs libfreetype)" >&2; exit 1; }
encoders=$("$FFMPEG" -hide_banner -encoders 2>/dev/null)
[[ $encoders == *" libx264 "* ]] || { echo "this ffmpeg has no libx264 encoder" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ff() { "$FFMPEG" -hide_banner -loglevel error -nostdin -y "$@"; }
# Flags that keep ffmpeg's output free of versions, dates and tags.
bitexact=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 -map_chapters -1)

digits=(1 2 3 4 5 6 7 8 9 10)
hanzi=(一 二 三 四 五 六 七 八 九 十)
# Nuosu (Liangshan Yi) numerals one to ten with their Yi Pinyin spelling
# (the Unicode character names: YI SYLLABLE CYP, NYIP, SUO, ...).
yi_num=(ꋍ ꑍ ꌕ ꇖ ꉬ ꃘ ꏃ ꉆ ꈬ ꊰ)
yi_roman=(cyp nyip suo ly nge fut shyp hxit ggu ci)

############################################################################
# 1. intro.mp4: "数一数 · Let's count" — ten apples appear one by one, each
#    number shown as a digit, in Chinese and in Yi, with a rising note per
#    apple. 640x360, 14 s, H.264 main + AAC, moov at the front. The same
#    bytes go into grade3-math and yi-literacy (the store keeps one copy).
############################################################################
duration=14
graph="$work/intro.filter"
{
    # An apple: a red disc with a highlight, drawn by formula.
    echo "color=c=black@0:s=44x44:r=25:d=$duration,format=rgba,"
    echo "geq=r='if(lt(hypot(X-15,Y-15),5),255,200)':g='if(lt(hypot(X-15,Y-15),5),190,40)':b='if(lt(hypot(X-15,Y-15),5),190,45)':a='if(lt(hypot(X-21.5,Y-23.5),20),255,0)',"
    echo "split=10$(printf '[a%d]' "${digits[@]}");"
    echo "color=c=0xFFF7E6:s=640x360:r=25:d=$duration,format=yuv420p,"
    # Title band and ground.
    echo "drawbox=x=0:y=0:w=640:h=56:color=0x2E7D32:t=fill,"
    echo "drawbox=x=0:y=330:w=640:h=30:color=0x8D6E63:t=fill,"
    echo "drawtext=$cjk:text='数一数':fontsize=30:fontcolor=white:x=24:y=40-ascent,"
    echo "drawtext=fontfile=$latin:text='Count to ten':fontsize=24:fontcolor=white:x=130:y=40-ascent,"
    echo "drawtext=fontfile=$yi_font:text='ꋍ ꑍ ꌕ':fontsize=30:fontcolor=white:x=w-text_w-24:y=42-ascent,"
    # Intro card, 0-2 s.
    echo "drawtext=fontfile=$latin_bold:text='1 … 10':fontsize=96:fontcolor=0x1B5E20:x=(w-text_w)/2:y=90:enable='lt(t,2)',"
    echo "drawtext=$cjk:text='${hanzi[*]}':fontsize=36:fontcolor=0xC62828:x=(w-text_w)/2:y=240-ascent:enable='lt(t,2)',"
    echo "drawtext=fontfile=$yi_font:text='${yi_num[*]}':fontsize=40:fontcolor=0x283593:x=(w-text_w)/2:y=305-ascent:enable='lt(t,2)',"
    # One number a second, 2-12 s: digit | Chinese | Yi (with its spelling).
    for i in "${!digits[@]}"; do
        from=$((2 + i)) to=$((3 + i))
        on="enable='between(t,$from,$to-0.001)'"
        echo "drawtext=fontfile=$latin_bold:text='${digits[i]}':fontsize=110:fontcolor=0x1B5E20:x=120-text_w/2:y=85:$on,"
        echo "drawtext=$cjk:text='${hanzi[i]}':fontsize=100:fontcolor=0xC62828:x=320-text_w/2:y=88:$on,"
        echo "drawtext=fontfile=$yi_font:text='${yi_num[i]}':fontsize=104:fontcolor=0x283593:x=520-text_w/2:y=80:$on,"
        echo "drawtext=fontfile=$latin:text='${yi_roman[i]}':fontsize=26:fontcolor=0x283593:x=520-text_w/2:y=232-ascent:$on,"
    done
    # Outro, 12-14 s: ten ones make one ten.
    outro="enable='gte(t,12)'"
    echo "drawtext=fontfile=$latin_bold:text='10':fontsize=80:fontcolor=0x1B5E20:x=110-text_w/2:y=90:$outro,"
    echo "drawtext=fontfile=$latin_bold:text='=':fontsize=64:fontcolor=0x424242:x=215-text_w/2:y=105:$outro,"
    echo "drawtext=$cjk:text='十':fontsize=84:fontcolor=0xC62828:x=320-text_w/2:y=88:$outro,"
    echo "drawtext=fontfile=$latin_bold:text='=':fontsize=64:fontcolor=0x424242:x=425-text_w/2:y=105:$outro,"
    echo "drawtext=fontfile=$yi_font:text='ꊰ':fontsize=90:fontcolor=0x283593:x=530-text_w/2:y=80:$outro,"
    echo "drawtext=$cjk:text='十个一是一个十':fontsize=26:fontcolor=0x424242:x=(w-text_w)/2:y=222-ascent:$outro,"
    echo "drawtext=fontfile=$latin:text='ten ones make one ten':fontsize=20:fontcolor=0x424242:x=(w-text_w)/2:y=252-ascent:$outro,"
    echo "drawbox=x=26:y=266:w=588:h=62:color=0xF9A825:t=4:enable='gte(t,12)'[bg];"
    # The apples, one more each second.
    prev="bg"
    for i in "${!digits[@]}"; do
        n=${digits[i]}
        out="v$n"
        [[ $n == 10 ]] && out=vout
        echo "[$prev][a$n]overlay=x=$((36 + i * 58)):y=276:enable='gte(t,$((2 + i)))'[$out];"
        prev=$out
    done
} >"$graph"
sed -i '$ s/;$//' "$graph"

# A pentatonic note per apple, then a C major chord for "ten".
notes=(261.63 293.66 329.63 392.00 440.00 523.25 587.33 659.25 783.99 880.00)
expr="0"
for i in "${!notes[@]}"; do
    s=$((2 + i))
    expr+="+if(between(t,$s,$s+0.9),0.30*sin(2*PI*${notes[i]}*(t-$s))*exp(-5*(t-$s)),0)"
done
for f in 523.25 659.25 783.99; do
    expr+="+if(gte(t,12),0.16*sin(2*PI*$f*(t-12))*exp(-2*(t-12)),0)"
done

ff -f lavfi -i "aevalsrc='$expr':s=48000:c=mono:d=$duration" \
    -filter_complex_script "$graph" \
    -map '[vout]' -map 0:a \
    -c:v libx264 -preset slow -tune animation -crf 24 -profile:v main -level:v 3.0 \
    -pix_fmt yuv420p -g 50 -threads 1 -x264-params threads=1 \
    -c:a aac -b:a 64k -ar 48000 -ac 1 \
    -movflags +faststart "${bitexact[@]}" -t "$duration" \
    "$work/intro.mp4"

# A poster frame (all ten apples) so classrooms show a picture before play.
ff -ss 11.5 -i "$work/intro.mp4" -frames:v 1 -update 1 -pred mixed \
    "${bitexact[@]}" "$work/intro-poster.png"

for dir in "$math/01-counting/video" "$yi/02-numbers/video"; do
    mkdir -p "$dir"
    install -m 644 "$work/intro.mp4" "$dir/intro.mp4"
    install -m 644 "$work/intro-poster.png" "$dir/intro-poster.png"
done

############################################################################
# 2. tones.m4a: the four Nuosu tones sung on a vowel, as pitch contours
#    (t 55 high, x 44 secondary high, unmarked 33 mid, p 21 low falling),
#    then the same four in a new order for the listening exercise.
############################################################################
# Chao tone level 1..5 -> Hz, three semitones a level.
hz() { awk -v l="$1" 'BEGIN { printf "%.2f", 165 * 2 ^ ((l - 1) * 3 / 12) }'; }
syllable_len=0.6
tone_expr="0"
# start  from-level  to-level
while read -r start from to; do
    f0=$(hz "$from") f1=$(hz "$to")
    tau="(t-$start)"
    phase="2*PI*($f0*$tau+($f1-$f0)*$tau*$tau/(2*$syllable_len))"
    env="min(1,$tau/0.04)*min(1,($syllable_len-$tau)/0.12)"
    voice="(sin($phase)+0.6*sin(2*$phase)+0.35*sin(3*$phase)+0.2*sin(4*$phase))/2.15"
    tone_expr+="+if(between(t,$start,$start+$syllable_len),0.5*$env*$voice,0)"
done <<'TONES'
0.3 5 5
1.3 4 4
2.3 3 3
3.3 2 1
5.3 2 1
6.3 5 5
7.3 3 3
8.3 4 4
TONES

ff -f lavfi -i "aevalsrc='$tone_expr':s=48000:c=mono:d=9.3" \
    -c:a aac -b:a 48k -movflags +faststart "${bitexact[@]}" \
    "$work/tones.m4a"
mkdir -p "$yi/01-tones/audio"
install -m 644 "$work/tones.m4a" "$yi/01-tones/audio/tones.m4a"

############################################################################
# 3. numerals.png: a chart of the Yi numerals one to ten.
############################################################################
chart="$work/numerals.filter"
{
    echo "color=c=white:s=640x300:d=1,format=rgb24,"
    echo "drawbox=x=0:y=0:w=640:h=300:color=0x283593:t=3,"
    echo "drawbox=x=0:y=149:w=640:h=2:color=0x9FA8DA:t=fill,"
    for i in "${!digits[@]}"; do
        col=$((i % 5)) row=$((i / 5))
        cx=$((64 + col * 128)) y=$((12 + row * 148))
        [[ $col -gt 0 ]] && echo "drawbox=x=$((cx - 64)):y=$((row * 150)):w=2:h=150:color=0x9FA8DA:t=fill,"
        # y=baseline-ascent puts every label of a row on one baseline.
        echo "drawtext=fontfile=$yi_font:text='${yi_num[i]}':fontsize=64:fontcolor=0x283593:x=$cx-text_w/2:y=$((y + 66))-ascent,"
        echo "drawtext=fontfile=$latin:text='${yi_roman[i]}':fontsize=20:fontcolor=0x283593:x=$cx-text_w/2:y=$((y + 98))-ascent,"
        echo "drawtext=$cjk:text='${digits[i]}  ${hanzi[i]}':fontsize=24:fontcolor=0x424242:x=$cx-text_w/2:y=$((y + 128))-ascent,"
    done
} >"$chart"
sed -i '$ s/,$//' "$chart"
ff -f lavfi -i "nullsrc=s=16x16:d=1" -filter_complex_script "$chart" \
    -frames:v 1 -update 1 -pred mixed "${bitexact[@]}" "$work/numerals.png"
mkdir -p "$yi/02-numbers/img"
install -m 644 "$work/numerals.png" "$yi/02-numbers/img/numerals.png"

############################################################################
# 4. worksheet.pdf: printed from the committed worksheet.html.
############################################################################
sheet="$yi/02-numbers/worksheet.html"
profile="$work/chromium-profile"
# chromium's launcher prints harmless noise on stderr; its exit status counts.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-extensions \
    --no-first-run --user-data-dir="$profile" --no-pdf-header-footer \
    --virtual-time-budget=5000 --print-to-pdf="$work/worksheet.pdf" \
    "file://$sheet" 2>"$work/chromium.log" \
    || { cat "$work/chromium.log" >&2; exit 1; }
[[ -s $work/worksheet.pdf ]] || { cat "$work/chromium.log" >&2; exit 1; }
# Pin the creation and modification dates (same length, so offsets stay valid).
perl -0777 -pi -e 's{/(CreationDate|ModDate) \(D:\d{14}}{/$1 (D:20250101000000}g' \
    "$work/worksheet.pdf"
install -m 644 "$work/worksheet.pdf" "$yi/02-numbers/worksheet.pdf"

############################################################################
cmp "$math/01-counting/video/intro.mp4" "$yi/02-numbers/video/intro.mp4"
echo "made with $("$FFMPEG" -version | head -1)"
(cd "$here" && find . -type f \( -name '*.mp4' -o -name '*.m4a' -o -name '*.png' -o -name '*.pdf' \) -print0 \
    | sort -z | xargs -0 ls -l | awk '{ printf "%9d  %s\n", $5, $9 }')
