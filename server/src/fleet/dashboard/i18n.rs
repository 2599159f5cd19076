//! The dashboard's words in Chinese and English, one table per language.

use axum::http::{HeaderMap, header};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// The cookie that remembers the chosen language.
pub const COOKIE: &str = "shanlu_dash_lang";

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "English",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code
            .trim()
            .split(['-', '_', ';'])
            .next()?
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|lang| lang.code() == primary)
    }

    /// `?lang=`, else the cookie, else `Accept-Language`, else Chinese.
    pub fn choose(query: Option<&str>, headers: &HeaderMap) -> Lang {
        if let Some(lang) = query.and_then(Lang::from_code) {
            return lang;
        }
        if let Some(lang) = super::cookie(headers, COOKIE).and_then(|v| Lang::from_code(&v)) {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(Lang::from_code))
            .unwrap_or(Lang::Zh)
    }

    pub fn t(self) -> &'static Strings {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

pub struct Strings {
    pub title: &'static str,
    pub login: &'static str,
    pub token: &'static str,
    pub login_help: &'static str,
    pub login_refused: &'static str,
    pub logout: &'static str,
    pub signed_in_as: &'static str,
    pub edges: &'static str,
    pub courses: &'static str,
    pub lessons: &'static str,
    pub name: &'static str,
    pub county: &'static str,
    pub all_counties: &'static str,
    pub last_seen: &'static str,
    pub never: &'static str,
    pub reports: &'static str,
    pub version: &'static str,
    pub catalog_lag: &'static str,
    pub held: &'static str,
    pub free: &'static str,
    pub flags: &'static str,
    pub behind: &'static str,
    pub failing: &'static str,
    pub silent: &'static str,
    pub only_flagged: &'static str,
    pub filter: &'static str,
    pub page: &'static str,
    pub previous: &'static str,
    pub next: &'static str,
    pub catalog_in_force: &'static str,
    pub summary: &'static str,
    pub course: &'static str,
    pub current_version: &'static str,
    pub complete: &'static str,
    pub partial: &'static str,
    pub older: &'static str,
    pub grade: &'static str,
    pub all_grades: &'static str,
    pub lesson: &'static str,
    pub opens: &'static str,
    pub window: &'static str,
    pub none_yet: &'static str,
    pub ago_s: &'static str,
    pub ago_m: &'static str,
    pub ago_h: &'static str,
    pub ago_d: &'static str,
}

pub static ZH: Strings = Strings {
    title: "善路 · 学校边缘节点",
    login: "登录",
    token: "管理员令牌",
    login_help: "输入 `shanlu origin init` 或 `origin add-admin` 给出的管理员令牌。",
    login_refused: "令牌不对或已被吊销。",
    logout: "退出",
    signed_in_as: "当前管理员",
    edges: "学校",
    courses: "课程采用",
    lessons: "最常打开的课",
    name: "名称",
    county: "县",
    all_counties: "全部县",
    last_seen: "最近报告",
    never: "从未",
    reports: "报告数",
    version: "版本",
    catalog_lag: "目录落后",
    held: "已存",
    free: "剩余空间",
    flags: "状态",
    behind: "落后",
    failing: "故障",
    silent: "失联",
    only_flagged: "只看有问题的",
    filter: "筛选",
    page: "页",
    previous: "上一页",
    next: "下一页",
    catalog_in_force: "现行目录序号",
    summary: "概况",
    course: "课程",
    current_version: "现行版本",
    complete: "完整",
    partial: "部分",
    older: "旧版本",
    grade: "年级",
    all_grades: "全部年级",
    lesson: "课",
    opens: "打开次数",
    window: "最近 30 天",
    none_yet: "还没有数据。",
    ago_s: "秒前",
    ago_m: "分钟前",
    ago_h: "小时前",
    ago_d: "天前",
};

pub static EN: Strings = Strings {
    title: "Shanlu · school edges",
    login: "Log in",
    token: "Admin token",
    login_help: "Enter an admin token from `shanlu origin init` or `origin add-admin`.",
    login_refused: "That token is wrong or was revoked.",
    logout: "Log out",
    signed_in_as: "Administrator",
    edges: "Schools",
    courses: "Course adoption",
    lessons: "Most-opened lessons",
    name: "Name",
    county: "County",
    all_counties: "All counties",
    last_seen: "Last report",
    never: "never",
    reports: "Reports",
    version: "Version",
    catalog_lag: "Catalog lag",
    held: "Held",
    free: "Disk free",
    flags: "Flags",
    behind: "behind",
    failing: "failing",
    silent: "silent",
    only_flagged: "only flagged",
    filter: "Filter",
    page: "page",
    previous: "Previous",
    next: "Next",
    catalog_in_force: "Catalog in force",
    summary: "Summary",
    course: "Course",
    current_version: "Current version",
    complete: "Complete",
    partial: "Partial",
    older: "Older",
    grade: "Grade",
    all_grades: "All grades",
    lesson: "Lesson",
    opens: "Opens",
    window: "last 30 days",
    none_yet: "Nothing yet.",
    ago_s: "s ago",
    ago_m: "min ago",
    ago_h: "h ago",
    ago_d: "d ago",
};
