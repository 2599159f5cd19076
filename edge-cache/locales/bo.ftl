### Needs review
### The classroom in Tibetan: a draft for teachers in Ganzi to correct.
### Keys missing here show in Chinese. How to work on this file:
### docs/translating.md.

language-name = བོད་ཡིག

site = ཤན་ལུའི་སློབ་ཁང་།
courses = སློབ་ཁྲིད།
lessons-heading = སློབ་ཚན།
lesson-count = སློབ་ཚན། { $count }
search = འཚོལ་ཞིབ།
search-placeholder = སློབ་ཁྲིད་དང་སློབ་ཚན་འཚོལ།
results-for = འཚོལ་འབྲས། { $query }
no-results = འཚོལ་འབྲས་མི་འདུག

## The course list's filters and a course's details.

subject = ཚན་པ།
grade = ལོ་རིམ།
language = སྐད་ཡིག
course-subject = ཚན་པ།: { $subject }
course-grade = ལོ་རིམ།: { $grade }
all = ཚང་མ།
filter = གདམ་གསེས།
no-courses = ད་དུང་སློབ་ཁྲིད་མི་འདུག

## A lesson.

files = ཡིག་ཆ།
open = ཁ་ཕྱེ།
download = ཕབ་ལེན།
offline-ready = སློབ་གྲྭར་ཉར་ཟིན།
not-yet-offline = ད་དུང་ཕབ་ལེན་བྱས་མེད།
duration-minutes = སྐར་མ། { $minutes }
unavailable-title = སློབ་ཚན་འདི་ད་དུང་དྲ་མེད་ཐོག་ལྟ་མི་ཐུབ།
unavailable-body = སློབ་གྲྭའི་ཞབས་ཞུ་འཕྲུལ་ཆས་ཀྱིས་ལྟེ་བའི་ཞབས་ཞུ་འཕྲུལ་ཆས་དང་འབྲེལ་མཐུད་བྱེད་མི་ཐུབ། དྲ་བ་སླར་གསོ་བྱུང་རྗེས་ཡང་བསྐྱར་ཁ་ཕྱེ་རོགས།
not-found = ཤོག་ངོས་འདི་རྙེད་མ་བྱུང་།
back-to-courses = སློབ་ཁྲིད་ཐོ་ལ་ཕྱིར་ལོག

## The status page.

status = གནས་སྟངས།
catalog = དཀར་ཆག
published = སྤེལ་དུས། { $at }
last-sync = མཐའ་མའི་མཉམ་འགྲིག
never = གཏན་ནས་མེད།
result-ok = ལེགས་གྲུབ།
result-incomplete = མ་གྲུབ། ཡིག་ཆ་ཁ་ཤས་ཆད་འདུག
result-failed = ཕམ་སོང་།
sync-over = འབྲེལ་ལམ། { $transport }
fallback-used = QUIC འབྲེལ་མཐུད་མི་ཐུབ། HTTPS བརྒྱུད་ནས་མཉམ་འགྲིག་བྱས། རྗེས་སུ་ QUIC ཡང་བསྐྱར་ཚོད་ལྟ་བྱེད།
sync-running = མཉམ་འགྲིག་བྱེད་བཞིན་པ།
sync-now = ད་ལྟ་མཉམ་འགྲིག་བྱེད།
sync-requested = མཉམ་འགྲིག་རེ་ཞུ་བྱས་ཟིན། ཡུད་ཙམ་ནས་འགོ་འཛུགས།
schedule = མཉམ་འགྲིག་དུས་ཚོད།
any-time = དུས་ནམ་ཡིན་ཡང་།
local-time = (ས་གནས་དུས་ཚོད།)
max-rate = དྲ་རྒྱའི་མྱུར་ཚད་ཚད་བཀག
no-cap = ཚད་བཀག་མེད།
next-window = མཉམ་འགྲིག་དུས་ཚོད་རྗེས་མ་འགོ་འཛུགས་དུས། { $at }
stopped-at-window-end = མཉམ་འགྲིག་དུས་ཚོད་རྫོགས་པས་མཚམས་བཞག ཤུལ་མའི་དུས་ཚོད་ནང་མུ་མཐུད་རྒྱུ།
bytes-held = ཉར་ཚགས་བྱས་པའི་གཞི་གྲངས།
disk-free = སྡེར་མོའི་སྟོང་ཆ།
upstream = ལྟེ་བའི་ཞབས་ཞུ་འཕྲུལ་ཆས།
reachable = འབྲེལ་མཐུད་ཐུབ།
unreachable = འབྲེལ་མཐུད་མི་ཐུབ།
unknown = མི་ཤེས།
downloading = ཕབ་ལེན་བྱེད་བཞིན་པ།
nothing-downloading = ཕབ་ལེན་བྱ་རྒྱུ་མི་འདུག
files-held = { $held } / { $total } ཡིག་ཆ།
