//! The classroom's own words in Chinese, Yi, Tibetan and English.
//!
//! Course and lesson titles come from the catalog; these are the labels around
//! them. Each language is one [`Strings`] table below, so a translator edits
//! one block and the compiler insists every label is there. The Tibetan
//! table is a draft for teachers in Ganzi to correct; the Yi table is still
//! to be written (see [`II`]).

use axum::http::HeaderMap;
use axum::http::header;

/// A language the classroom speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    Ii,
    Bo,
    En,
}

/// The cookie that remembers a reader's choice.
pub const COOKIE: &str = "shanlu_lang";

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Zh, Lang::Ii, Lang::Bo, Lang::En];

    /// The BCP 47 code, as in the catalog and the `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::Ii => "ii",
            Lang::Bo => "bo",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Lang::ALL.into_iter().find(|lang| lang.code() == primary)
    }

    /// The language's name in itself, for the switcher.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::Ii => "ꆈꌠꉙ",
            Lang::Bo => "བོད་ཡིག",
            Lang::En => "English",
        }
    }

    /// Catalog texts are shown in this order: the reader's language, then
    /// Chinese (every school reads it), then English.
    pub fn fallbacks(self) -> [&'static str; 3] {
        match self {
            Lang::Zh => ["zh", "en", "ii"],
            other => [other.code(), "zh", "en"],
        }
    }

    /// The reader's language: the cookie they chose, else their browser's
    /// `Accept-Language`, else Chinese.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .and_then(|(_, value)| Lang::from_code(value));
        if let Some(lang) = cookie {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .split(',')
                    .filter_map(|item| Lang::from_code(item.split(';').next().unwrap_or("")))
                    .next()
            })
            .unwrap_or(Lang::Zh)
    }

    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::Zh => &ZH,
            Lang::Ii => &II,
            Lang::Bo => &BO,
            Lang::En => &EN,
        }
    }
}

/// Every label of the classroom, in one language.
pub struct Strings {
    pub site: &'static str,
    pub courses: &'static str,
    pub lessons: &'static str,
    pub search: &'static str,
    pub search_placeholder: &'static str,
    pub results_for: &'static str,
    pub no_results: &'static str,
    pub subject: &'static str,
    pub grade: &'static str,
    pub language: &'static str,
    pub all: &'static str,
    pub filter: &'static str,
    pub no_courses: &'static str,
    pub status: &'static str,
    pub home: &'static str,
    pub files: &'static str,
    pub open: &'static str,
    pub download: &'static str,
    pub offline_ready: &'static str,
    pub not_yet_offline: &'static str,
    pub unavailable_title: &'static str,
    pub unavailable_body: &'static str,
    pub not_found: &'static str,
    pub back_to_courses: &'static str,
    pub catalog: &'static str,
    pub published: &'static str,
    pub last_sync: &'static str,
    pub never: &'static str,
    pub result_ok: &'static str,
    pub result_incomplete: &'static str,
    pub result_failed: &'static str,
    pub bytes_held: &'static str,
    pub disk_free: &'static str,
    pub downloading: &'static str,
    pub nothing_downloading: &'static str,
    pub upstream: &'static str,
    pub reachable: &'static str,
    pub unreachable: &'static str,
    pub unknown: &'static str,
    pub sync_running: &'static str,
    /// What carried the last sync: "over" QUIC or HTTPS.
    pub transport: &'static str,
    /// The last sync used the HTTPS fallback because QUIC could not connect.
    pub fallback_used: &'static str,
    /// The status page's button that starts a sync pass at once.
    pub sync_now: &'static str,
    /// Shown after it was pressed, until the pass starts.
    pub sync_requested: &'static str,
    /// The row with the sync windows and the bandwidth cap.
    pub schedule: &'static str,
    /// No sync windows: passes start whenever they are due.
    pub any_time: &'static str,
    /// After the windows: their times are the edge's local time.
    pub local_time: &'static str,
    pub max_rate: &'static str,
    pub no_cap: &'static str,
    /// Before a local date and time.
    pub next_window: &'static str,
    /// A last sync cut short by the end of its window.
    pub stopped_at_window_end: &'static str,
    /// After a number: "20 min".
    pub minutes: &'static str,
}

const ZH: Strings = Strings {
    site: "山路课堂",
    courses: "课程",
    lessons: "课",
    search: "搜索",
    search_placeholder: "搜索课程和课文",
    results_for: "搜索结果：",
    no_results: "没有找到相关课程。",
    subject: "科目",
    grade: "年级",
    language: "语言",
    all: "全部",
    filter: "筛选",
    no_courses: "这里还没有课程。",
    status: "状态",
    home: "首页",
    files: "文件",
    open: "打开",
    download: "下载",
    offline_ready: "已保存在本校",
    not_yet_offline: "尚未下载到本校",
    unavailable_title: "这节课还不能离线使用",
    unavailable_body: "本校服务器暂时连不上中心服务器，这节课还没有下载到本校。网络恢复后请再打开一次。",
    not_found: "找不到这个页面。",
    back_to_courses: "返回课程列表",
    catalog: "课程目录",
    published: "发布时间",
    last_sync: "上次同步",
    never: "从未",
    result_ok: "成功",
    result_incomplete: "未完成，部分文件缺失",
    result_failed: "失败",
    bytes_held: "已存课程数据",
    disk_free: "磁盘剩余空间",
    downloading: "正在下载",
    nothing_downloading: "没有待下载的内容。",
    upstream: "中心服务器",
    reachable: "可以连接",
    unreachable: "无法连接",
    unknown: "未知",
    sync_running: "同步进行中",
    transport: "连接方式",
    fallback_used: "QUIC 无法连接（网络可能屏蔽了 UDP），已改用 HTTPS 同步；稍后会再试 QUIC",
    sync_now: "立即同步",
    sync_requested: "已请求同步，马上开始。",
    schedule: "同步时段",
    any_time: "随时",
    local_time: "（本地时间）",
    max_rate: "带宽上限",
    no_cap: "不限",
    next_window: "下一个同步时段开始于",
    stopped_at_window_end: "同步时段结束，已暂停；下一个时段继续",
    minutes: "分钟",
};

/// Yi labels wait for a Nuosu-speaking translator: until then the Yi
/// classroom shows Chinese labels (Liangshan's bilingual schools teach both)
/// around Yi course and lesson titles. Replace `..ZH` field by field.
const II: Strings = Strings { ..ZH };

const BO: Strings = Strings {
    site: "ཤན་ལུའི་སློབ་ཁང་།",
    courses: "སློབ་ཁྲིད།",
    lessons: "སློབ་ཚན།",
    search: "འཚོལ་ཞིབ།",
    search_placeholder: "སློབ་ཁྲིད་དང་སློབ་ཚན་འཚོལ།",
    results_for: "འཚོལ་འབྲས།",
    no_results: "འཚོལ་འབྲས་མི་འདུག",
    subject: "ཚན་པ།",
    grade: "ལོ་རིམ།",
    language: "སྐད་ཡིག",
    all: "ཚང་མ།",
    filter: "གདམ་གསེས།",
    no_courses: "ད་དུང་སློབ་ཁྲིད་མི་འདུག",
    status: "གནས་སྟངས།",
    home: "མ་ངོས།",
    files: "ཡིག་ཆ།",
    open: "ཁ་ཕྱེ།",
    download: "ཕབ་ལེན།",
    offline_ready: "སློབ་གྲྭར་ཉར་ཟིན།",
    not_yet_offline: "ད་དུང་ཕབ་ལེན་བྱས་མེད།",
    unavailable_title: "སློབ་ཚན་འདི་ད་དུང་དྲ་མེད་ཐོག་ལྟ་མི་ཐུབ།",
    unavailable_body: "སློབ་གྲྭའི་ཞབས་ཞུ་འཕྲུལ་ཆས་ཀྱིས་ལྟེ་བའི་ཞབས་ཞུ་འཕྲུལ་ཆས་དང་འབྲེལ་མཐུད་བྱེད་མི་ཐུབ། དྲ་བ་སླར་གསོ་བྱུང་རྗེས་ཡང་བསྐྱར་ཁ་ཕྱེ་རོགས།",
    not_found: "ཤོག་ངོས་འདི་རྙེད་མ་བྱུང་།",
    back_to_courses: "སློབ་ཁྲིད་ཐོ་ལ་ཕྱིར་ལོག",
    catalog: "དཀར་ཆག",
    published: "སྤེལ་དུས།",
    last_sync: "མཐའ་མའི་མཉམ་འགྲིག",
    never: "གཏན་ནས་མེད།",
    result_ok: "ལེགས་གྲུབ།",
    result_incomplete: "མ་གྲུབ། ཡིག་ཆ་ཁ་ཤས་ཆད་འདུག",
    result_failed: "ཕམ་སོང་།",
    bytes_held: "ཉར་ཚགས་བྱས་པའི་གཞི་གྲངས།",
    disk_free: "སྡེར་མོའི་སྟོང་ཆ།",
    downloading: "ཕབ་ལེན་བྱེད་བཞིན་པ།",
    nothing_downloading: "ཕབ་ལེན་བྱ་རྒྱུ་མི་འདུག",
    upstream: "ལྟེ་བའི་ཞབས་ཞུ་འཕྲུལ་ཆས།",
    reachable: "འབྲེལ་མཐུད་ཐུབ།",
    unreachable: "འབྲེལ་མཐུད་མི་ཐུབ།",
    unknown: "མི་ཤེས།",
    sync_running: "མཉམ་འགྲིག་བྱེད་བཞིན་པ།",
    transport: "འབྲེལ་ལམ།",
    fallback_used: "QUIC འབྲེལ་མཐུད་མི་ཐུབ། HTTPS བརྒྱུད་ནས་མཉམ་འགྲིག་བྱས། རྗེས་སུ་ QUIC ཡང་བསྐྱར་ཚོད་ལྟ་བྱེད།",
    sync_now: "ད་ལྟ་མཉམ་འགྲིག་བྱེད།",
    sync_requested: "མཉམ་འགྲིག་རེ་ཞུ་བྱས་ཟིན། ཡུད་ཙམ་ནས་འགོ་འཛུགས།",
    schedule: "མཉམ་འགྲིག་དུས་ཚོད།",
    any_time: "དུས་ནམ་ཡིན་ཡང་།",
    local_time: "(ས་གནས་དུས་ཚོད།)",
    max_rate: "དྲ་རྒྱའི་མྱུར་ཚད་ཚད་བཀག",
    no_cap: "ཚད་བཀག་མེད།",
    next_window: "མཉམ་འགྲིག་དུས་ཚོད་རྗེས་མ་འགོ་འཛུགས་དུས།",
    stopped_at_window_end: "མཉམ་འགྲིག་དུས་ཚོད་རྫོགས་པས་མཚམས་བཞག ཤུལ་མའི་དུས་ཚོད་ནང་མུ་མཐུད་རྒྱུ།",
    minutes: "སྐར་མ།",
};

const EN: Strings = Strings {
    site: "shanlu classroom",
    courses: "Courses",
    lessons: "Lessons",
    search: "Search",
    search_placeholder: "Search courses and lessons",
    results_for: "Results for",
    no_results: "No courses or lessons match.",
    subject: "Subject",
    grade: "Grade",
    language: "Language",
    all: "All",
    filter: "Filter",
    no_courses: "There are no courses here yet.",
    status: "Status",
    home: "Home",
    files: "Files",
    open: "Open",
    download: "Download",
    offline_ready: "Saved at this school",
    not_yet_offline: "Not downloaded yet",
    unavailable_title: "This lesson is not available offline yet",
    unavailable_body: "The school's server cannot reach the origin right now and has not downloaded this lesson yet. Open it again when the link is back.",
    not_found: "There is no such page.",
    back_to_courses: "Back to the courses",
    catalog: "Catalog",
    published: "Published",
    last_sync: "Last sync",
    never: "never",
    result_ok: "complete",
    result_incomplete: "incomplete: some files are missing",
    result_failed: "failed",
    bytes_held: "Course data held",
    disk_free: "Free disk space",
    downloading: "Downloading",
    nothing_downloading: "Nothing is waiting to download.",
    upstream: "Origin",
    reachable: "reachable",
    unreachable: "unreachable",
    unknown: "unknown",
    sync_running: "sync in progress",
    transport: "over",
    fallback_used: "QUIC could not connect (the network may block UDP), so this edge synced over HTTPS; it tries QUIC again later",
    sync_now: "Sync now",
    sync_requested: "Sync asked for; it starts in a moment.",
    schedule: "Sync windows",
    any_time: "any time",
    local_time: "(local time)",
    max_rate: "bandwidth cap",
    no_cap: "none",
    next_window: "Next sync window opens at",
    stopped_at_window_end: "stopped at the end of the sync window; the next window carries on",
    minutes: "min",
};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_wins_over_the_browser_language() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-US,en;q=0.9"),
        );
        assert_eq!(Lang::of_request(&headers), Lang::En);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; shanlu_lang=bo"),
        );
        assert_eq!(Lang::of_request(&headers), Lang::Bo);
        assert_eq!(Lang::of_request(&HeaderMap::new()), Lang::Zh);
    }

    #[test]
    fn codes_round_trip_and_regions_are_ignored() {
        for lang in Lang::ALL {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("zh-Hans-CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_code("fr"), None);
    }
}
